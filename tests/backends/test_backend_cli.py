"""``driftsafe backend check`` as a user runs it: refusals, JSON schema 1, exit codes,
and cleanup after a Ctrl-C in the middle of the checks."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from backendroots import LOCAL_BLOCK, RESOURCE, write_root
from click.testing import CliRunner

from driftsafe.backends import (
    CHECK_IDS,
    CheckReport,
    CheckResult,
    Evidence,
    S3Backend,
    lock_info_from_output,
    parse_go_time,
    read_backend,
    render_markdown,
    render_table,
    secret_verdict,
)
from driftsafe.cli.main import cli
from driftsafe.engine import Engine, ProcessTracker
from driftsafe.errors import ConfigError, Interrupted


def check(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["backend", "check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_refusals_are_clear_and_touch_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = check(str(tmp_path / "empty"))
    assert code == 1 and "holds no Terraform files" in err
    plain = write_root(tmp_path / "plain", "", RESOURCE)
    code, _, err = check(str(plain))
    assert code == 1 and "has no backend block" in err
    local = write_root(tmp_path / "local", LOCAL_BLOCK)
    code, _, err = check(str(local))
    assert code == 1 and "--allow-local" in err
    code, _, err = check(str(local), "--allow-local", "--json", "--markdown")
    assert code == 1 and "exclusive" in err
    code, _, err = check(str(local), "--allow-local", "--scratch", "http://127.0.0.1:9/x")
    assert code == 1 and "--scratch is for the http backend" in err
    other = write_root(
        tmp_path / "http",
        'terraform {\n  backend "http" {\n    address = "http://127.0.0.1:9/state"\n  }\n}\n',
    )
    code, _, err = check(str(other))
    assert code == 1 and "--scratch ADDRESS" in err
    code, _, err = check(str(other), "--scratch", "http://127.0.0.1:9/state")
    assert code == 1 and "must not be the real state" in err
    two = write_root(tmp_path / "two", LOCAL_BLOCK + 'terraform {\n  backend "pg" {}\n}\n')
    code, _, err = check(str(two))
    assert code == 1 and "more than one backend" in err
    for root in (plain, local, other, two):
        assert not (root / ".terraform").exists()


def test_backend_settings_are_read_as_terraform_sees_them(tmp_path: Path) -> None:
    root = write_root(
        tmp_path / "s3",
        'terraform {\n  backend "s3" {\n    bucket = "b-1"\n    key = "a/b.tfstate"\n'
        '    region = "eu-west-1"\n    endpoints = { s3 = "http://127.0.0.1:1" }\n'
        "    use_lockfile = true\n  }\n}\n",
    )
    config = read_backend(root)
    assert config.type == "s3" and config.source.endswith("backend.tf")
    assert config.get("endpoints") == {"s3": "http://127.0.0.1:1"}
    s3 = S3Backend(config)
    assert s3.state_key("default") == "a/b.tfstate"
    assert s3.state_key("ci") == "env:/ci/a/b.tfstate"
    # After init, the merged settings (-backend-config values too) win.
    (root / ".terraform").mkdir()
    (root / ".terraform" / "terraform.tfstate").write_text(
        json.dumps(
            {
                "backend": {
                    "type": "s3",
                    "config": {"bucket": "b-2", "key": "a/b.tfstate", "encrypt": None},
                }
            }
        )
    )
    merged = read_backend(root)
    assert merged.get("bucket") == "b-2" and "encrypt" not in merged.settings
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "b.tf.json").write_text(
        json.dumps({"terraform": {"backend": {"pg": {"conn_str": "postgres://x"}}}})
    )
    assert read_backend(tmp_path / "j").settings == {"conn_str": "postgres://x"}
    with pytest.raises(ConfigError):
        read_backend(tmp_path / "nope")


def test_lock_info_and_go_times() -> None:
    output = (
        "Error: Error acquiring the state lock\n\nLock Info:\n  ID:        abc-1\n"
        "  Path:      b/k\n  Operation: OperationTypeApply\n  Who:       me@host\n"
        "  Version:   1.15.5\n  Created:   2026-12-01 14:17:38.461033587 +0000 UTC\n"
        "  Info:      \n\n\nTerraform acquires a state lock\n"
    )
    info = lock_info_from_output(output)
    at = datetime(2026, 12, 1, 14, 17, 38, 461000, tzinfo=UTC).timestamp()
    assert info["ID"] == "abc-1" and info["Who"] == "me@host" and info["Info"] == ""
    assert parse_go_time(info["Created"]) == pytest.approx(at, abs=0.001)
    assert parse_go_time("2026-12-01T14:17:38.461Z") == pytest.approx(at, abs=0.001)
    assert parse_go_time("2026-12-01T15:17:38+01:00") == pytest.approx(at - 0.461, abs=0.001)
    assert parse_go_time("never") is None
    assert lock_info_from_output("Error: something else") == {}


def test_the_secret_check_can_fail() -> None:
    clean = json.dumps({"version": 4, "serial": 1, "lineage": "x", "resources": []}).encode()
    planted = {
        "version": 4,
        "serial": 2,
        "lineage": "x",
        "resources": [
            {
                "type": "terraform_data",
                "name": "x",
                "instances": [{"attributes": {"input": "AKIA" + "ZQ3DRIFTSAFEX7Q2"}}],
            }
        ],
    }
    assert secret_verdict([clean]) == (True, "no secret found")
    ok, detail = secret_verdict([clean, json.dumps(planted).encode()])
    assert ok is False and "version 2" in detail


def test_report_renders_and_its_exit_code_follows_the_worst_check() -> None:
    report = CheckReport("s3", "s3 bucket b", "driftsafe-check-1", "embedded", 1796135858.0)
    report.checks = [
        CheckResult(cid, None if n == 8 else n != 5, f"detail {n}")
        for n, cid in enumerate(CHECK_IDS)
    ]
    report.checks[0].evidence.append(Evidence("apply B", "terraform apply", 1, "Lock Info:"))
    assert report.exit_code == 2
    data = report.to_json()
    assert data["schema_version"] == 1 and data["backend"] == "s3"
    assert [c["id"] for c in data["checks"]] == list(CHECK_IDS)
    assert set(data["checks"][0]) == {"id", "ok", "detail", "evidence"}
    assert data["checks"][0]["evidence"][0]["output"] == "Lock Info:"
    table = render_table(report)
    assert "MISSING stale-writer-fenced" in table and "n/a     encrypted-at-rest" in table
    md = render_markdown(report)
    assert "| `stale-writer-fenced` | MISSING | detail 5 |" in md and "<details>" in md
    report.checks[5].ok = True
    assert report.exit_code == 0


@pytest.mark.slow
def test_cli_json_and_ctrl_c_cleans_up(
    make_root: Callable[[str], Path], request: pytest.FixtureRequest
) -> None:
    root = make_root("s3-lockfile")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    full = subprocess.run(
        [sys.executable, "-m", "driftsafe", "backend", "check", str(root), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert full.returncode == 2, full.stderr  # S3 does not fence: a guarantee is missing
    data = json.loads(full.stdout)
    assert data["schema_version"] == 1 and data["backend"] == "s3"
    assert {c["id"]: c["ok"] for c in data["checks"]}["stale-writer-fenced"] is False
    assert "cleanup: deleted workspace driftsafe-check-" in full.stderr

    s3 = S3Backend(read_backend(root))
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftsafe", "backend", "check", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    request.addfinalizer(lambda: proc.kill() if proc.poll() is None else None)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("stale-lock-visible"):
            break
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until an apply holds the lock
        listed = s3.s3().list_objects_v2(Bucket=s3.bucket, Prefix="env:/").get("Contents", [])
        if any(o["Key"].endswith(".tflock") for o in listed):
            break
        time.sleep(0.2)
    else:
        pytest.fail("no apply took the lock")
    proc.send_signal(signal.SIGINT)
    _out, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(lines) + rest
    scratch = next(x for x in lines if "scratch root" in x).rsplit(" ", 1)[1].strip()
    assert not Path(scratch).exists()
    versions = s3.s3().list_object_versions(Bucket=s3.bucket, Prefix="env:/")
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    assert "Interrupted" in rest and "deleted workspace" in rest


def test_http_scratch_addresses(tmp_path: Path) -> None:
    from driftsafe.backends.http import HttpBackend

    root = write_root(
        tmp_path / "h",
        'terraform {\n  backend "http" {\n'
        '    address = "https://ds.example/v1/states/team/app"\n'
        '    lock_address = "https://ds.example/v1/locks/team/app"\n  }\n}\n',
    )
    given = HttpBackend(read_backend(root), {}, "https://ds.example/v1/states/scratch/x")
    scratch = given.scratch_config("ignored")
    assert scratch.get("address") == "https://ds.example/v1/states/scratch/x"
    assert scratch.get("lock_address") == "https://ds.example/v1/locks/scratch/x"
    assert scratch.get("unlock_address") == "https://ds.example/v1/locks/scratch/x"
    other = HttpBackend(read_backend(root), {}, "https://other.example/state/scratch")
    assert other.scratch_config("x").get("lock_address") == "https://other.example/state/scratch"


def test_a_closed_terminal_does_not_stop_the_cleanup(tmp_path: Path, engine: Any) -> None:
    """Progress to a closed pipe fails the check, and the cleanup still runs whole."""
    from driftsafe.backends import run_backend_check

    root = write_root(tmp_path / "local", LOCAL_BLOCK)
    said: list[str] = []

    def progress(line: str) -> None:
        said.append(line)
        if len(said) >= 2:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        run_backend_check(root, engine=engine, allow_local=True, progress=progress)
    scratch = said[0].rsplit(" ", 1)[1]
    assert "driftsafe-check-" in scratch and not Path(scratch).exists()
    assert not (root / ".terraform").exists()


def test_a_run_cut_short_by_a_signal_is_an_interruption(engine: Engine, tmp_path: Path) -> None:
    """A Terraform run that a Ctrl-C stopped proves nothing: the check ends Interrupted
    (exit 130), never with that run's failure ("the apply to kill never reached the
    slow resource", exit 1), whichever step the signal came in."""
    from driftsafe.backends.check import _Run

    own = dataclasses.replace(engine, processes=ProcessTracker())  # the fixture's is shared
    run = _Run(own, cast(Any, None), cast(Any, None), tmp_path, "ws", {}, print)
    proc = run.start("version")
    own.processes.interrupt(signal.SIGINT)
    with pytest.raises(Interrupted):
        run.finished(proc)
    assert proc.poll() is not None  # waited for, not left running
