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
        self._taken = threading.Event()

    def __enter__(self) -> ConsoleCamera:
        """Launch the browser and log in, in the background (while the step starts the
        apply to be pictured)."""
        self.missing = self._unavailable()
        if self.missing is None:
            self._thread = threading.Thread(target=self._run, name="drill-camera", daemon=True)
            self._thread.start()
        return self

    def _unavailable(self) -> str | None:
        if self.d.backend.name != "driftsafe":
            return "this run's state is not on a driftsafe server: no console to show"
        if not os.access(CHROMIUM, os.X_OK):
            return f"{CHROMIUM} is not installed here (scripts/ensure-chromium installs it)"
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return "Playwright for Python is not installed (the dev extras have it)"
        return None

    def shoot(self) -> None:
        """Take the picture as soon as the browser is ready (returns then; the camera
        thread does the work: :meth:`wait_taken` waits for it)."""
        if self._thread is not None:
            self._ready.wait(timeout=60)
        self._shoot.set()

    def wait_taken(self, timeout: float = 60) -> None:
        """Until the picture is taken (or the browser gave up)."""
        if self._thread is not None:
            self._taken.wait(timeout=timeout)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Take the picture if it was not taken, and end the browser."""
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
                    self._taken.set()  # now, not after the browser has closed
                finally:
                    browser.close()
        except (Error, OSError) as exc:
            self.missing = f"the browser failed: {exc}".splitlines()[0]
        finally:
            self._ready.set()
            self._taken.set()
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
