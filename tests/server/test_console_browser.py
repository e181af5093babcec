"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
server (SQLite and PostgreSQL) that real Terraform writes through the embedded engine.

Each scope logs in; the workspace list, a version and a diff render; a lock appears
live while a slow `terraform apply` holds it, and an admin force-unlocks it by typing
its ID with the keyboard alone; hostile content never runs (no dialog, no console
error, CSP included); axe-core finds nothing serious or critical on any page.
Screenshots of the main pages go to tmp_path (and to $CONSOLE_SCREENSHOTS if set).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from consolehelpers import HOSTILE, lock_info
from srvhelpers import Srv, make_tf

from driftsafe.engine import Engine
from driftsafe.lab.drill.camera import ARGS, CHROMIUM  # the drill's own browser set-up

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium (apt-get install chromium)",
    ),
]

WS = "browser/app"
HOSTILE_WS = "browser/hostile"
STACK = """
variable "sleep" {
  type    = number
  default = 0
}
variable "tag" {
  type    = string
  default = "a"
}
resource "terraform_data" "slow" {
  input            = { tag = var.tag, label = "<img src=x onerror=alert(1)>" }
  triggers_replace = [var.tag]
  provisioner "local-exec" {
    command = "sleep ${var.sleep}"
  }
}
output "hostile" {
  value = "<img src=x onerror=alert(1)>"
}
output "tag" {
  value = terraform_data.slow.output
}
"""


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed (dev extras)"
    )
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Any) -> Iterator[Any]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


class Watch:
    """A page whose dialogs and console errors are recorded (a hostile payload that ran
    would open a dialog; a CSP violation is a console error)."""

    def __init__(self, browser: Any, base: str, shots: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.base = base
        self.shots = shots
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> Any:
        answer = self.page.goto(self.base + path)
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        return self.page

    def login(self, token: str) -> None:
        self.go("/ui/login")
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(self.base + "/ui/")

    def axe(self, name: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(self.page)
        bad = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert bad == [], f"axe on {name}: {bad}"

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def clean(self) -> None:
        assert self.dialogs == [], f"a payload ran: {self.dialogs}"
        assert self.errors == [], f"console errors: {self.errors}"

    def close(self) -> None:
        self.context.close()


def _save(shots: Path) -> None:
    target = os.environ.get("CONSOLE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copy(png, Path(target) / png.name)


def _hostile_lock(srv: Srv) -> None:
    """A workspace with a version and a lock whose Who is hostile, via the protocol."""
    auth = ("tf", srv.writer)
    with httpx.Client(base_url=srv.url, auth=auth, timeout=30) as c:
        body = {
            "version": 4,
            "serial": 1,
            "lineage": "hostile",
            "terraform_version": "1.15.5",
            "outputs": {"o": {"value": HOSTILE, "type": "string"}},
            "resources": [],
        }
        assert c.post(f"/v1/states/{HOSTILE_WS}", content=json.dumps(body)).status_code == 200
        locked = c.request("LOCK", f"/v1/locks/{HOSTILE_WS}", json=lock_info("hostile-lock"))
        assert locked.status_code == 200


def test_console_in_chromium(browser: Any, srv: Srv, engine: Engine, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    tf = make_tf(engine, tmp_path / "root", srv, WS, body=STACK)
    tf.ok("apply", "-auto-approve", "-input=false", "-no-color", "-var=tag=a")
    tf.ok("apply", "-auto-approve", "-input=false", "-no-color", "-var=tag=b")
    _hostile_lock(srv)
    try:
        # Read and write tokens: every page, no force-unlock, no raw download.
        for token, scope in ((srv.reader, "read"), (srv.writer, "write")):
            w = Watch(browser, srv.url, shots)
            w.login(token)
            page = w.page
            assert page.locator("header .who .badge").first.inner_text() == scope
            assert page.locator("table.list tbody tr").count() == 2
            assert page.get_by_role("link", name=WS).is_visible()
            w.go(f"/ui/workspaces/{HOSTILE_WS}")
            assert page.locator("#lock-panel").inner_text().count(HOSTILE) == 1  # as text
            assert page.locator("form.unlock").count() == 0
            w.go(f"/ui/workspaces/{WS}/versions/1")
            assert page.get_by_text("Download the raw state").count() == 0
            w.clean()
            w.close()

        w = Watch(browser, srv.url, shots)
        # Keyboard only: focus starts in the token field (autofocus), Enter submits.
        w.go("/ui/login")
        w.axe("login")
        w.shot("login")
        w.page.keyboard.type(srv.admin)
        w.page.keyboard.press("Enter")
        w.page.wait_for_url(srv.url + "/ui/")
        page = w.page
        w.axe("workspaces")
        w.shot("workspaces")

        w.go(f"/ui/workspaces/{WS}/versions/2")
        assert page.get_by_text("Download the raw state (admin)").is_visible()
        w.axe("version")
        w.shot("version")
        w.go(f"/ui/workspaces/{WS}/versions/2?resource=terraform_data.slow#attrs")
        assert page.locator("#attrs").inner_text().count(HOSTILE) == 2  # input, output
        w.go(f"/ui/workspaces/{WS}/diff?from=1&to=2")
        assert page.get_by_text("replaced").first.is_visible()
        w.axe("diff")
        w.shot("diff")
        for tab in ("drift", "audit", "resources"):
            w.go(f"/ui/workspaces/{WS}?tab={tab}")
            w.axe(f"workspace-{tab}")
        w.go("/ui/audit")
        w.axe("audit")
        w.shot("audit")

        # Keyboard only through the tabs: Tab to "Drift", Enter.
        w.go(f"/ui/workspaces/{WS}")
        for _ in range(60):
            page.keyboard.press("Tab")
            focused = page.evaluate("document.activeElement && document.activeElement.textContent")
            if focused == "Drift":
                break
        else:
            raise AssertionError("the Drift tab is not reachable with Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{srv.url}/ui/workspaces/{WS}?tab=drift")

        # The lock appears live while a real apply holds it.
        w.go(f"/ui/workspaces/{WS}")
        assert "Not locked" in page.locator("#lock-panel").inner_text()
        holder = tf.start(
            "apply", "-auto-approve", "-input=false", "-no-color", "-var=tag=c", "-var=sleep=25"
        )
        try:
            page.locator("#lock-panel h2", has_text="Locked").wait_for(timeout=60_000)
            lock_id = page.locator("code.lockid").inner_text().strip()
            assert lock_id and srv.store.get_lock(WS).id == lock_id  # type: ignore[union-attr]
            w.axe("workspace-locked")
            w.shot("workspace")
            # Keyboard only: Tab to the confirmation field, type the ID, Enter.
            for _ in range(80):
                page.keyboard.press("Tab")
                if (
                    page.evaluate("document.activeElement && document.activeElement.id")
                    == "confirm"
                ):
                    break
            else:
                raise AssertionError("the force-unlock field is not reachable with Tab")
            page.keyboard.type(lock_id)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{srv.url}/ui/workspaces/{WS}?unlocked={lock_id}")
            assert "Not locked" in page.locator("#lock-panel").inner_text()
            assert srv.store.get_lock(WS) is None
            result = holder.wait(timeout=120)
        finally:
            if holder.poll() is None:
                holder.kill()
        # Fencing refused the old holder's write after the force-unlock.
        assert result.returncode != 0
        events = srv.store.audit_events(WS, 50)
        assert any(e.action == "force-unlock" and e.token == "admin" for e in events)
        assert any(e.action == "write" and e.outcome == "rejected" for e in events)
        w.go(f"/ui/workspaces/{WS}?tab=audit")
        w.shot("workspace-audit")
        w.clean()
        w.close()
    finally:
        _save(shots)
    names = {p.name for p in shots.glob("*.png")}
    assert names >= {"login.png", "workspaces.png", "workspace.png", "version.png", "diff.png"}
    assert (shots / "workspace.png").stat().st_size > 10_000
