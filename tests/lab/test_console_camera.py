"""The drill's console screenshot is evidence when it can be taken, and an honest line
when it cannot; never a check, never a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftsafe.engine import Engine
from driftsafe.lab.drill import camera
from driftsafe.lab.drill.context import Drill
from driftsafe.lab.evidence import Evidence
from driftsafe.settings import Settings


def test_without_chromium_the_report_says_why(
    tmp_path: Path, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(camera, "CHROMIUM", str(tmp_path / "no-chromium"))
    ev = Evidence(tmp_path / "report", title="t")
    ev.step("lock-clash", "Lock clash")
    d = Drill(root=tmp_path, ev=ev, engine=engine, settings=settings)
    with camera.ConsoleCamera(d, "/ui/") as cam:
        cam.shoot()
    cam.record("lock-clash", "The console")
    (step,) = ev.steps
    assert step.items == [
        f"_No screenshot of the web console: {tmp_path / 'no-chromium'} is "
        "not installed here (scripts/ensure-chromium installs it)._"
    ]
    assert ev.checklist() == []  # no check depends on the picture
