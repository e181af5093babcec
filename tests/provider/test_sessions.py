"""Provider sessions: one lab provider process per Terraform run, through
TF_REATTACH_PROVIDERS, that ends with its run and is never shared between runs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from labenv import make_tf_dir

from driftsafe.engine import Engine, sessions

DELAY = 'resource "lab_delay" "d" {\n  seconds = var.seconds\n}\n' + (
    'variable "seconds" {\n  type    = number\n  default = 0\n}\n'
)


def _trace(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(check: Any, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _session_pid(session: sessions.Session) -> int:
    config = json.loads(session.env[sessions.REATTACH_ENV])
    return int(config["registry.driftsafe.local/driftsafe/lab"]["Pid"])


def test_a_run_gets_one_provider_process(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_tf_dir(engine, root, DELAY)
    trace = tmp_path / "trace.jsonl"
    env = {"DRIFTSAFE_PROVIDER_TRACE": str(trace)}
    for args in (["plan"], ["apply", "-auto-approve"], ["plan", "-detailed-exitcode"]):
        result = engine.run([*args, "-no-color"], cwd=root, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        # The transcript shows what a user needs to run it, not a per-run socket.
        assert sessions.REATTACH_ENV not in result.env
    assert _wait_for(lambda: len(_trace(trace)) == 3), _trace(trace)
    assert all(record["session"] for record in _trace(trace))

    # Without sessions, Terraform starts the provider itself, several times per command.
    managed = dataclasses.replace(engine, settings=engine.settings.with_(provider_sessions=False))
    trace.unlink()
    result = managed.run(["plan", "-no-color"], cwd=root, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(_trace(trace)) >= 3
    assert not any(record["session"] for record in _trace(trace))


def test_init_and_roots_without_the_lab_provider_get_no_session(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".terraform.lock.hcl").write_text(
        'provider "registry.driftsafe.local/driftsafe/lab" {\n  version = "0.1.0"\n}\n'
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / ".terraform.lock.hcl").write_text('provider "registry.terraform.io/x/y" {}\n')
    assert sessions.wanted(["plan", "-no-color"], root, {})
    assert sessions.wanted(["-chdir=root", "apply"], tmp_path, {})
    assert sessions.wanted(["providers", "schema", "-json"], root, {})
    # init records the provider in the lock file: it must see the real one.
    assert not sessions.wanted(["init"], root, {})
    assert not sessions.wanted(["providers", "lock"], root, {})
    assert not sessions.wanted(["output", "-json"], root, {})
    assert not sessions.wanted(["plan"], other, {})
    assert not sessions.wanted(["plan"], tmp_path / "missing", {})
    # A provider someone reattached on purpose (a debugger) is left alone.
    assert not sessions.wanted(["plan"], root, {sessions.REATTACH_ENV: "{}"})


def _lab_root(engine: Engine, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_tf_dir(engine, root, DELAY)
    return root


def test_a_session_ends_with_its_run_however_it_ends(engine: Engine, tmp_path: Path) -> None:
    root = _lab_root(engine, tmp_path)
    env = dict(os.environ)
    session = sessions.start(["plan"], root, env)
    assert session is not None
    pid = _session_pid(session)
    run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        session.attach(run.pid)
        time.sleep(0.3)
        assert _alive(pid), "the session ended before its run"
        run.kill()  # what the drill does to an apply
        run.wait()
        assert _wait_for(lambda: not _alive(pid)), "the session outlived its killed run"
    finally:
        run.kill()
        run.wait()


def test_a_session_whose_run_never_started_ends(engine: Engine, tmp_path: Path) -> None:
    root = _lab_root(engine, tmp_path)
    session = sessions.start(["apply"], root, dict(os.environ))
    assert session is not None
    pid = _session_pid(session)
    session.close()
    assert _wait_for(lambda: not _alive(pid)), "a session without a run lingered"


@pytest.mark.slow
def test_killing_an_apply_ends_its_provider_mid_create(engine: Engine, tmp_path: Path) -> None:
    root = _lab_root(engine, tmp_path)
    trace = tmp_path / "trace.jsonl"
    env = {"DRIFTSAFE_PROVIDER_TRACE": str(trace), "TF_VAR_seconds": "60"}
    proc = engine.start(["apply", "-auto-approve", "-no-color"], cwd=root, env=env)
    try:
        assert proc.wait_for_output(r"lab_delay\.d: Creating", timeout=60)
        proc.send_signal(signal.SIGKILL)
        result = proc.wait(timeout=30)
        assert result.signal == signal.SIGKILL
        # The provider writes its trace line as it exits: well before the 60 s delay.
        assert _wait_for(lambda: len(_trace(trace)) == 1, timeout=20), "provider still running"
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_concurrent_runs_on_one_root_get_their_own_providers(
    engine: Engine, tmp_path: Path
) -> None:
    root = _lab_root(engine, tmp_path)
    trace = tmp_path / "trace.jsonl"
    env = {"DRIFTSAFE_PROVIDER_TRACE": str(trace), "TF_VAR_seconds": "1"}
    runs = [engine.start(["plan", "-no-color", "-lock=false"], cwd=root, env=env) for _ in range(3)]
    results = [run.wait(timeout=120) for run in runs]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert _wait_for(lambda: len(_trace(trace)) == 3), _trace(trace)
    assert len({record["pid"] for record in _trace(trace)}) == 3


def _fork_servers() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"driftsafe.provider.forkserver" in cmdline and cmdline[0] == sys.executable.encode():
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_the_long_lived_fork_server_never_holds_a_runs_secret(
    engine: Engine, tmp_path: Path
) -> None:
    root = _lab_root(engine, tmp_path)
    secret = "s3cret-never-in-the-fork-server"
    for _ in range(2):  # the first may spawn the fork server
        result = engine.run(
            ["plan", "-no-color"], cwd=root, env={"TF_VAR_seconds": "0", "X_SECRET": secret}
        )
        assert result.returncode == 0, result.stderr
    servers = _fork_servers()
    assert servers, "no fork server is running"
    for pid in servers:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except PermissionError:
            continue
        assert secret.encode() not in environ
        assert b"TF_VAR_" not in environ
