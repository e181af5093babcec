"""The drill end to end: the project's main test. One real run (real server, real
Terraform, real files), then its checklist asserted item by item; a run with a
deliberately broken setting must fail on the right line; the report renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from driftsafe.errors import ConfigError
from driftsafe.lab.drill.context import MARKER, prepare_dir

EXPECTED = [
    "backend-http",
    "backend-settings",
    "apply-clean",
    "one-module",
    "noop",
    "clash-error",
    "clash-holder",
    "clash-winner",
    "wait-timeout",
    "wait-server",
    "crash-stale",
    "crash-unlock",
    "crash-recovered",
    "fencing",
    "fencing-nothing-lost",
    "drift-refresh-only",
    "drift-report",
    "drift-blind-revert",
    "resolve-codify",
    "resolve-revert",
    "resolve-clean",
    "secret-in-file",
    "secret-not-in-state",
    "secret-scanner-can-fail",
    "versions-one-per-write",
    "versions-diff",
    "immutable-cbd",
    "immutable-tamper",
    "immutable-surface",
    "ci-workflows",
    "scheduled-alert",
    "reflection",
]


def _run(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTSAFE_")}
    env["DRIFTSAFE_HOME"] = str(directory.parent / "home")
    return subprocess.run(
        [sys.executable, "-m", "driftsafe", "lab", "run", "--dir", str(directory), *extra],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _checklist(directory: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((directory / "report" / "checklist.json").read_text())
    items = data["checks"] if isinstance(data, dict) else data
    return {c["id"]: c for c in items}


@pytest.fixture(scope="module")
def drill(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    directory = tmp_path_factory.mktemp("drill") / "run"
    return _run(directory), directory


@pytest.mark.slow
@pytest.mark.xdist_group("drill")
def test_drill_exits_zero_and_prints_the_report(drill: tuple[Any, Path]) -> None:
    proc, directory = drill
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"Report: {directory / 'report' / 'index.html'}" in proc.stdout
    assert "[13/13]" in proc.stdout  # progress shown step by step


@pytest.mark.slow
@pytest.mark.xdist_group("drill")
@pytest.mark.parametrize("check_id", EXPECTED)
def test_drill_checklist_item(drill: tuple[Any, Path], check_id: str) -> None:
    _proc, directory = drill
    checks = _checklist(directory)
    assert check_id in checks, f"{check_id} missing from the checklist"
    item = checks[check_id]
    assert item["passed"], f"✗ {item['criterion']}: {item.get('detail')}"
    assert item["evidence"], "a ✓ must point at its evidence"


@pytest.mark.slow
@pytest.mark.xdist_group("drill")
def test_drill_report_is_complete_and_secret_free(drill: tuple[Any, Path]) -> None:
    _proc, directory = drill
    report = directory / "report"
    html = (report / "index.html").read_text()
    assert "✗" not in html.split("</table>")[0]  # checklist first, all ✓
    assert (report / "report.md").read_text().count("✓") >= len(EXPECTED)
    transcripts = list((report / "transcripts").glob("*.json"))
    assert len(transcripts) > 40
    one = json.loads(transcripts[0].read_text())
    assert {"argv", "cwd", "env", "started_at", "ended_at", "stdout", "stderr"} <= set(one)
    # The secret reached its file and nothing the report wrote.
    secret = (directory / "stack" / "runtime" / "staging" / "secret.txt").read_text()
    assert secret
    for path in report.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


@pytest.mark.slow
@pytest.mark.xdist_group("drill")
def test_drill_report_renders_in_chromium(drill: tuple[Any, Path], tmp_path: Path) -> None:
    chromium = "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        pytest.skip(f"{chromium} is missing: run scripts/ensure-chromium")
    from test_render_chromium import _pixels, decode_png, screenshot

    _proc, directory = drill
    shot = tmp_path / "drill.png"
    proc = screenshot(directory / "report" / "index.html", shot, 1280, 1600, tmp_path)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    width, height, bpp, rows = decode_png(shot.read_bytes())
    assert (width, height) == (1280, 1600)
    pixels = list(_pixels(rows, bpp))
    assert sum(px != b"\xff\xff\xff" for px in pixels) > 0.05 * len(pixels)
    # An all-✓ checklist shows no failed-row red near the top.
    top = list(_pixels(rows, bpp, 0, 700))
    assert sum(px == b"\xff\xf5\xf5" for px in top) < 200


@pytest.mark.slow
@pytest.mark.xdist_group("drill-broken")
def test_broken_setting_fails_on_the_right_line(tmp_path: Path) -> None:
    directory = tmp_path / "broken"
    proc = _run(directory, "--only", "lock-clash", "--unsafe-disable-locking")
    assert proc.returncode == 1, proc.stdout[-3000:]
    checks = _checklist(directory)
    assert not checks["clash-error"]["passed"]
    assert not checks["clash-holder"]["passed"]
    # The backend evidence shows the missing lock address too; applying still works:
    # the ✗ marks are exactly where locking matters.
    assert checks["apply-clean"]["passed"] and checks["backend-http"]["passed"] is False
    assert "✗ The second apply fails with `Error acquiring the state lock`" in proc.stdout


def test_prepare_dir_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        prepare_dir(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_prepare_dir_wipes_a_previous_drill(tmp_path: Path) -> None:
    assert prepare_dir(tmp_path) is False
    release = tmp_path / "stack" / "runtime" / "releases" / "abc"
    release.mkdir(parents=True)
    (release / "app.txt").write_text("v1")
    (release / "app.txt").chmod(0o444)
    release.chmod(0o555)
    assert prepare_dir(tmp_path) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER]


def test_unknown_step_is_a_clear_error(tmp_path: Path) -> None:
    proc = _run(tmp_path / "x", "--only", "nonsense")
    assert proc.returncode == 1
    assert "unknown drill step" in proc.stderr and "Traceback" not in proc.stderr
