"""Stopping driftsafe stops Terraform: real processes, real signals, a real state server.

Each test starts a slow apply (or a plan waiting for a held lock) through driftsafe,
signals the driftsafe process alone, and checks what a user and the state server see
afterwards: driftsafe waited for Terraform and exited with its status, no process is
left in the root, and the state lock was released (or the user was told).
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from enginehelpers import LockServer, processes_in, wait_until_no_processes_in

from driftsafe.engine import Engine

pytestmark = pytest.mark.slow

DRIFTSAFE = str(Path(sys.executable).with_name("driftsafe"))
APPLY = ["apply", "-auto-approve", "-input=false", "-no-color", "-var", "sleep=300"]


class Running:
    """A driftsafe command as a subprocess, its output collected as it comes."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [DRIFTSAFE, *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _drain(stream, into: list[str]) -> None:  # type: ignore[no-untyped-def]
        with stream:
            for line in stream:
                into.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for(self, pattern: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.stdout + self.stderr):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {pattern!r}:\n{self.stdout}\n{self.stderr}")
            time.sleep(0.05)

    def wait(self, timeout: float = 120) -> int:
        rc = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(10)
        return rc


@contextlib.contextmanager
def reaped(root: Path) -> Iterator[None]:
    """Whatever a failed test leaves running in ``root`` is killed afterwards."""
    try:
        yield
    finally:
        for line in processes_in(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)


def _init(engine: Engine, server: LockServer, root: Path) -> None:
    result = engine.run(["init", "-input=false", "-no-color"], cwd=root, env=server.env())
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_driftsafe_tf_stops_terraform_and_frees_the_lock(
    sig: signal.Signals, engine: Engine, lock_server: LockServer, tmp_path: Path
) -> None:
    root = lock_server.root(tmp_path / "root", "sig/tf")
    _init(engine, lock_server, root)
    with reaped(root):
        run = Running(["tf", *APPLY], root, lock_server.env())
        run.wait_for(r"Provisioning with 'local-exec'")
        assert lock_server.lock("sig/tf") is not None  # the apply holds it
        run.proc.send_signal(sig)  # to driftsafe alone, as CI, timeout or systemd would
        rc = run.wait(timeout=120)
        # Terraform's own answer to a graceful stop, passed through.
        assert "Interrupt received." in run.stdout, run.stdout + run.stderr
        assert "Two interrupts" not in run.stdout
        assert rc == 1, run.stderr
        assert wait_until_no_processes_in(root) == []
    assert lock_server.lock("sig/tf") is None


def test_second_signal_stops_terraform_hard(
    engine: Engine, lock_server: LockServer, tmp_path: Path
) -> None:
    root = lock_server.root(tmp_path / "root", "sig/hard")
    _init(engine, lock_server, root)
    with reaped(root):
        run = Running(["tf", *APPLY], root, lock_server.env())
        run.wait_for(r"Provisioning with 'local-exec'")
        run.proc.send_signal(signal.SIGTERM)
        run.proc.send_signal(signal.SIGTERM)
        rc = run.wait(timeout=120)
        assert rc != 0
        assert wait_until_no_processes_in(root) == []
    # Released, or the user was told where to look.
    assert lock_server.lock("sig/hard") is None or "state lock may still be held" in run.stderr


def test_ctrl_c_on_a_terminal_reaches_terraform_once(
    engine: Engine, lock_server: LockServer, tmp_path: Path
) -> None:
    """On a terminal Terraform shares driftsafe's process group: it prompts, and the
    terminal's Ctrl-C reaches it directly, so driftsafe must not send it again (two
    would be Terraform's "stop hard")."""
    root = lock_server.root(tmp_path / "root", "sig/tty")
    _init(engine, lock_server, root)
    env = {**os.environ, **lock_server.env()}
    with reaped(root):
        pid, master = pty.fork()
        if pid == 0:  # the child: driftsafe on a terminal, as a user types it
            os.chdir(root)
            os.execve(DRIFTSAFE, [DRIFTSAFE, "tf", "apply", "-no-color", "-var", "sleep=300"], env)
        seen = b""

        def read_until(pattern: bytes, timeout: float = 120, to_the_end: bool = False) -> None:
            """Read the terminal until ``pattern`` shows, or with ``to_the_end`` until
            driftsafe closes it (it exited)."""
            nonlocal seen
            deadline = time.monotonic() + timeout
            closed = False
            while not re.search(pattern, seen):
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:  # EIO: every holder of the terminal is gone
                        chunk = b""
                    if not chunk:
                        closed = True
                        break
                    seen += chunk
                if time.monotonic() > deadline:
                    break
            if to_the_end:
                assert closed, "driftsafe did not exit:\n" + seen.decode(errors="replace")
            else:
                assert re.search(pattern, seen), seen.decode(errors="replace")

        try:
            read_until(rb"Enter a value:")
            os.write(master, b"yes\r")
            read_until(rb"Provisioning with 'local-exec'")
            os.write(master, b"\x03")  # Ctrl-C
            # Read to the end: what Terraform prints last depends on where the stop
            # caught it ("execution halted", or the provisioner's own error).
            read_until(rb"(?!)", timeout=120, to_the_end=True)
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(master)
        text = seen.decode(errors="replace")
        assert "Interrupt received." in text and "Two interrupts" not in text, text
        assert os.waitstatus_to_exitcode(status) == 1
        assert wait_until_no_processes_in(root) == []
    assert lock_server.lock("sig/tty") is None


def _hold_lock(server: LockServer, ws: str) -> None:
    info = {
        "ID": "11111111-2222-3333-4444-555555555555",
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "alice@laptop",
        "Version": "1.15.5",
        "Created": "2026-01-01T00:00:00Z",
        "Path": "",
    }
    answer = httpx.request(
        "LOCK", f"{server.url}/v1/locks/{ws}", json=info, auth=("alice", server.writer)
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("command", ["check", "resolve"])
def test_signal_stops_a_drift_command_and_its_terraform(
    command: str, engine: Engine, lock_server: LockServer, tmp_path: Path
) -> None:
    """A drift check (or resolve, which starts with one) whose plan waits for a held
    lock: SIGTERM stops that plan at once, and driftsafe exits 128+15."""
    ws = f"sig/{command}"
    root = lock_server.root(tmp_path / "root", ws)
    _init(engine, lock_server, root)
    applied = engine.run(APPLY[:-1] + ["sleep=0"], cwd=root, env=lock_server.env())
    assert applied.returncode == 0, applied.stderr
    _hold_lock(lock_server, ws)
    args = {
        "check": ["drift", "check", str(root), "--lock-timeout", "10m"],
        "resolve": ["drift", "resolve", str(root), "--revert", "terraform_data.slow", "--yes"],
    }[command]
    if command == "resolve":
        args += ["--lock-timeout", "10m"]
    with reaped(root):
        run = Running(args, tmp_path, lock_server.env())
        deadline = time.monotonic() + 60
        while not processes_in(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2)  # let Terraform reach its lock retries
        assert processes_in(root), run.stderr  # the plan is waiting for the lock
        run.proc.send_signal(signal.SIGTERM)
        rc = run.wait(timeout=120)
        assert rc == 128 + signal.SIGTERM, run.stdout + run.stderr
        assert "interrupted by SIGTERM" in run.stdout + run.stderr
        assert wait_until_no_processes_in(root) == []
    # The held lock is still alice's: the check never took it, nor broke it.
    held = lock_server.lock(ws)
    assert held is not None and held["who"] == "alice@laptop"


def test_engine_counts_its_processes_and_refuses_new_ones_once_interrupted(
    engine: Engine, settings, tmp_path: Path
) -> None:
    from driftsafe.engine import get_engine
    from driftsafe.errors import Interrupted

    fresh = get_engine(settings, "embedded")
    assert fresh.processes.count == 0
    fresh.run(["version"], cwd=tmp_path)
    fresh.run(["version"], cwd=tmp_path)
    assert fresh.processes.count == 2
    assert [p.argv[-1] for p in fresh.processes.started] == ["version", "version"]
    assert fresh.processes.live() == []
    fresh.processes.interrupt(signal.SIGTERM)
    with pytest.raises(Interrupted, match="SIGTERM") as stopped:
        fresh.start(["version"], cwd=tmp_path)
    assert stopped.value.exit_code == 143
    assert fresh.processes.count == 2


def test_signal_stops_the_drill_which_still_writes_its_report(tmp_path: Path) -> None:
    """`driftsafe lab run`: SIGTERM during the first apply stops that apply, the drill
    stops its state server, writes the report of what ran, and exits 128+15."""
    directory = tmp_path / "drill"
    staging = directory / "stack" / "envs" / "staging"
    with reaped(directory):
        run = Running(["lab", "run", "--dir", str(directory), "--only", "noop"], tmp_path, {})
        deadline = time.monotonic() + 180
        while not (staging.is_dir() and any("apply" in p for p in processes_in(staging))):
            assert run.proc.poll() is None and time.monotonic() < deadline, run.stdout
            time.sleep(0.05)
        run.proc.send_signal(signal.SIGTERM)
        rc = run.wait(timeout=180)
        assert rc == 128 + signal.SIGTERM, run.stdout + run.stderr
        assert "interrupted by SIGTERM" in run.stdout + run.stderr
        assert (directory / "report" / "index.html").is_file()
        # No Terraform, provider or state server of the drill is left.
        assert wait_until_no_processes_in(directory) == []
