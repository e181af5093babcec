"""Single-resource behaviour on small roots: import, diagnostics, the delay, the symlink."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from labenv import make_tf_dir

from driftsafe.engine import Engine

pytestmark = pytest.mark.slow


def test_import_config_file_by_path(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "existing.conf"
    target.write_text("max_connections = 10\nport = 9000\n")
    target.chmod(0o644)
    tf = make_tf_dir(
        engine,
        tmp_path / "root",
        'resource "lab_config_file" "adopted" {\n'
        f'  path   = "{target}"\n'
        '  values = { port = "9000", max_connections = "10" }\n'
        "}\n",
    )
    imported = tf("import", "lab_config_file.adopted", str(target))
    assert imported.returncode == 0, imported.stderr
    assert "Import successful!" in imported.stdout
    state = json.loads((tmp_path / "root" / "terraform.tfstate").read_text())
    attrs = state["resources"][0]["instances"][0]["attributes"]
    assert attrs["values"] == {"max_connections": "10", "port": "9000"}
    assert attrs["mode"] == "0644"
    plan = tf("plan", "-detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes." in plan.stdout

    missing = tf("import", "lab_config_file.adopted", str(tmp_path / "nope.conf"))
    assert missing.returncode == 1


def test_bad_configuration_gives_diagnostics_naming_the_attribute(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Served cold, so the non-fork-server start path is covered too.
    monkeypatch.setenv("DRIFTSAFE_PROVIDER_FORKSERVER", "0")
    tf = make_tf_dir(
        engine,
        tmp_path,
        'resource "lab_config_file" "mode" {\n'
        f'  path    = "{tmp_path}/a.conf"\n'
        '  content = "x"\n'
        '  mode    = "999"\n'
        "}\n"
        'resource "lab_config_file" "both" {\n'
        f'  path    = "{tmp_path}/b.conf"\n'
        '  content = "x"\n'
        '  values  = { "bad key" = "multi\\nline" }\n'
        "}\n"
        'resource "lab_secret_file" "s" {\n'
        f'  path = "{tmp_path}/s"\n'
        '  mode = "0x600"\n'
        "}\n"
        'resource "lab_delay" "d" {\n'
        "  seconds = -1\n"
        "}\n",
    )
    result = tf("validate")
    assert result.returncode == 1
    err = result.stderr
    assert 'mode: "999" is not a valid file mode' in err
    assert 'mode: "0x600" is not a valid file mode' in err
    assert "values, content: set either values or content, not both" in err
    assert 'values: key "bad key"' in err
    assert 'values["bad key"]: value must be a single line' in err
    assert "seconds: must be between 0 and 3600, got -1" in err
    assert "with lab_config_file.mode" in err
    assert "Traceback" not in err and "unexpected error" not in err
    assert not (tmp_path / "a.conf").exists()


def test_delay_takes_its_time_and_symlink_drift(engine: Engine, tmp_path: Path) -> None:
    target_a, target_b = tmp_path / "a", tmp_path / "b"
    target_a.mkdir()
    target_b.mkdir()
    tf = make_tf_dir(
        engine,
        tmp_path / "root",
        'resource "lab_delay" "d" {\n'
        "  seconds  = 2\n"
        '  triggers = { v = "1" }\n'
        "}\n"
        'resource "lab_symlink" "current" {\n'
        f'  path   = "{tmp_path}/current"\n'
        f'  target = "{target_a}"\n'
        "}\n",
    )
    started = time.monotonic()
    applied = tf("apply", "-auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert time.monotonic() - started >= 2
    assert "lab_delay.d: Creation complete after 2s" in applied.stdout
    link = tmp_path / "current"
    assert os.readlink(link) == str(target_a)

    os.unlink(link)
    os.symlink(target_b, link)
    drift = tf("plan", "-refresh-only")
    assert "lab_symlink.current has changed" in drift.stdout
    assert f'"{target_a}" -> "{target_b}"' in drift.stdout
    fixed = tf("apply", "-auto-approve")
    assert fixed.returncode == 0
    assert "lab_delay.d" not in fixed.stdout.split("Terraform will perform")[-1]
    assert os.readlink(link) == str(target_a)


def test_a_delay_ends_when_its_release_file_appears(engine: Engine, tmp_path: Path) -> None:
    """``LAB_DELAY_RELEASE_FILE``: the drill holds a lock until a step is done, not for a
    guessed time. Without the file the delay takes its ``seconds``."""
    root = tmp_path / "root"
    make_tf_dir(engine, root, 'resource "lab_delay" "gate" {\n  seconds = 120\n}\n')
    gate = tmp_path / "go"
    env = {"LAB_DELAY_RELEASE_FILE": str(gate)}
    apply = engine.start(["apply", "-auto-approve", "-no-color"], cwd=root, env=env)
    assert apply.wait_for_output(r"lab_delay\.gate: Creating", timeout=120)
    time.sleep(0.5)
    assert apply.poll() is None  # still waiting: no file yet
    gate.touch()
    done = apply.wait(timeout=60)  # well under the delay's 120 s
    assert done.returncode == 0, done.stderr
    assert "lab_delay.gate: Creation complete" in done.stdout
    state = json.loads((root / "terraform.tfstate").read_text())
    assert state["resources"][0]["instances"][0]["attributes"]["seconds"] == 120
