"""The warm fork server: starts are forked, children die with their launcher, and
DRIFTSAFE_PROVIDER_FORKSERVER=0 serves cold."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labenv import make_tf_dir

from driftsafe.engine import Engine

# Terraform's go-plugin magic cookie: the provider serves only when it is set.
COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
HANDSHAKE = re.compile(r"^1\|6\|unix\|/[^|]*plugin-(\d+)\.sock\|grpc\|")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        # A zombie counts as gone.
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def _start_launcher(tmp_path: Path, **extra: str) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, TF_PLUGIN_MAGIC_COOKIE=COOKIE, PLUGIN_PROTOCOL_VERSIONS="6", **extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftsafe.provider"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = HANDSHAKE.match(line)
    if not match:
        _stop(proc)
        raise AssertionError(f"no go-plugin handshake: {line!r}")
    return proc, int(match.group(1))


def _forked_launcher(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A launcher whose start the fork server served (the first may be cold)."""
    for _ in range(3):
        proc, pid = _start_launcher(tmp_path)
        if pid != proc.pid:
            return proc, pid
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        _stop(proc)
        time.sleep(1)  # give the spawned server time to import
    raise AssertionError("the fork server never served a start")


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_plans_use_forked_starts(engine: Engine, tmp_path: Path) -> None:
    # Terraform starting the provider itself (no session): each start is forked.
    engine = dataclasses.replace(engine, settings=engine.settings.with_(provider_sessions=False))
    trace = tmp_path / "trace.jsonl"
    tf = make_tf_dir(engine, tmp_path / "root", 'resource "lab_delay" "d" {\n  seconds = 0\n}\n')
    env = {"DRIFTSAFE_PROVIDER_TRACE": str(trace)}
    for _ in range(2):  # the first start may be cold: it spawns the server
        result = engine.run(["plan", "-no-color"], cwd=tmp_path / "root", env=env, timeout=120)
        assert result.returncode == 0, result.stderr
    del tf
    starts = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(starts) >= 4
    forked = [s for s in starts if s["forked"]]
    assert forked, starts
    # A forked start is ready in a fraction of a cold start's import time.
    assert min(s["imported"] - s["start"] for s in forked) < 0.3


@pytest.mark.slow
def test_forked_child_dies_with_its_launcher(tmp_path: Path) -> None:
    proc, pid = _forked_launcher(tmp_path)
    try:
        assert _alive(pid)
        proc.kill()  # what Terraform does when a plugin will not stop
        proc.wait(timeout=10)
        assert _wait_gone(pid), "the forked provider outlived its launcher"
    finally:
        _stop(proc)


@pytest.mark.slow
def test_sigterm_is_forwarded_and_exit_code_returned(tmp_path: Path) -> None:
    proc, pid = _forked_launcher(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        assert _wait_gone(pid), "SIGTERM did not reach the forked provider"
        # The launcher exits with the child's own exit code, not a signal death.
        assert rc >= 0
    finally:
        _stop(proc)


@pytest.mark.slow
def test_disabled_fork_server_serves_cold(tmp_path: Path) -> None:
    proc, pid = _start_launcher(tmp_path, DRIFTSAFE_PROVIDER_FORKSERVER="0")
    try:
        assert pid == proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        _stop(proc)


@pytest.mark.slow
@pytest.mark.parametrize("forkserver", ["1", "0"])
def test_provider_exits_when_terraform_is_killed(tmp_path: Path, forkserver: str) -> None:
    # A stand-in for Terraform: a parent that starts the provider, reports its
    # handshake, then is SIGKILLed as the drill kills a running apply.
    script = (
        "import os, subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-m', 'driftsafe.provider'],"
        " stdout=subprocess.PIPE, text=True)\n"
        "print(p.pid, p.stdout.readline(), flush=True, end='')\n"
        "import time; time.sleep(600)\n"
    )
    env = dict(
        os.environ,
        TF_PLUGIN_MAGIC_COOKIE=COOKIE,
        PLUGIN_PROTOCOL_VERSIONS="6",
        DRIFTSAFE_PROVIDER_FORKSERVER=forkserver,
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        first = parent.stdout.readline()
        launcher_pid, handshake = first.split(" ", 1)
        match = HANDSHAKE.match(handshake)
        assert match, first
        server_pid = int(match.group(1))
        assert _alive(int(launcher_pid)) and _alive(server_pid)
        parent.kill()
        parent.wait(timeout=10)
        assert _wait_gone(int(launcher_pid)), "the launcher outlived Terraform"
        assert _wait_gone(server_pid), "the provider outlived Terraform"
    finally:
        _stop(parent)
