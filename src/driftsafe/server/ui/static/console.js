// driftsafe console: the only script. Pages work without it; it adds the live lock
// panel (a long poll the server answers when the lock changes, or after 20 s).
"use strict";
(function () {
  function poll(panel) {
    var url = panel.getAttribute("data-poll");
    var since = panel.getAttribute("data-lock") || "";
    var pause = 1000;
    function next(delay) { window.setTimeout(step, delay); }
    function step() {
      fetch(url + "?since=" + encodeURIComponent(since), {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
      }).then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("status " + response.status); }
        var held = response.headers.get("X-Lock-Key") || "";
        return response.text().then(function (html) {
          if (held !== since) {
            since = held;
            panel.setAttribute("data-lock", held);
            panel.classList.toggle("held", held !== "");
            panel.innerHTML = html;
          }
          pause = 1000;
          next(250);
        });
      }).catch(function () {
        pause = Math.min(pause * 2, 30000);  // server restarting or session gone: back off
        next(pause);
      });
    }
    next(500);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var panels = document.querySelectorAll("[data-poll]");
    for (var i = 0; i < panels.length; i++) { poll(panels[i]); }
  });
})();
