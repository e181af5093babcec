"""A screenshot of the web console for the report: headless Chromium (Debian's, driven
by Playwright) logs in before a step, takes the picture the moment the step asks, in
its own thread so the step is not slowed, and the report gets the picture or the
reason it is missing. No check depends on it."""

from __future__ import annotations

import base64
import os
import threading
from html import escape
from types import TracebackType

from driftsafe.lab.drill.context import Drill

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH, HEIGHT = 1280, 900


class ConsoleCamera:
    def __init__(self, d: Drill, path: str) -> None:
        self.d = d
        self.path = path
        self.png: bytes | None = None
        self.missing: str | None = None
        self._ready = threading.Event()
        self._shoot = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ConsoleCamera:
        if self.d.backend.name != "driftsafe":
            self.missing = "this run's state is not on a driftsafe server: no console to show"
            return self
        if not os.access(CHROMIUM, os.X_OK):
            self.missing = f"{CHROMIUM} is not installed here (scripts/ensure-chromium installs it)"
            return self
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            self.missing = "Playwright for Python is not installed (the dev extras have it)"
            return self
        self._thread = threading.Thread(target=self._run, name="drill-camera", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=60)
        return self

    def shoot(self) -> None:
        """Take the picture now (returns at once; the camera thread does the work)."""
        self._shoot.set()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shoot.set()  # never leave the thread waiting
        if self._thread is not None:
            self._thread.join(timeout=90)
            if self._thread.is_alive() and self.missing is None:
                self.missing = "the browser did not finish in 90 s"

    def _run(self) -> None:
        from playwright.sync_api import Error, sync_playwright

        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                    page.goto(self.d.server_url + "/ui/login")
                    page.fill("#token", self.d.admin_token)
                    page.click("button[type=submit]")
                    page.wait_for_url(self.d.server_url + "/ui/")
                    self._ready.set()
                    self._shoot.wait(timeout=300)
                    page.goto(self.d.server_url + self.path)
                    self.png = page.screenshot(full_page=False)
                finally:
                    browser.close()
        except (Error, OSError) as exc:
            self.missing = f"the browser failed: {exc}".splitlines()[0]
        finally:
            self._ready.set()
            self._done.set()

    def record(self, step: str, title: str) -> None:
        """The picture as a figure of ``step``, or a line saying why there is none."""
        if self.png is None:
            reason = self.missing or "no picture was taken"
            self.d.ev.narrative(step, f"_No screenshot of the web console: {reason}._")
            return
        data = base64.b64encode(self.png).decode()
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" '
            f'xmlns:xlink="http://www.w3.org/1999/xlink" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title>"
            f'<image width="{WIDTH}" height="{HEIGHT}" href="data:image/png;base64,{data}"/>'
            "</svg>"
        )
        self.d.ev.artifact(step, title, svg, kind="svg")
