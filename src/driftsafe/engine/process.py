"""Run one Terraform command as a subprocess and capture it as evidence.

Each run has an explicit environment and working directory, stdout and stderr
captured separately line by line with timestamps, an optional timeout, and signal
delivery (the drill SIGKILLs an apply mid-flight and SIGSTOPs another).

A :class:`ProcessTracker` (one per :class:`~driftsafe.engine.Engine`) knows every
process it started and which are still running, so a signal to driftsafe reaches
each of them (``engine/signals.py``) and no Terraform outlives the command.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from driftsafe.engine.signals import HARD_STOP_GRACE, forward_signals, graceful_signal
from driftsafe.errors import Interrupted

_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|PRIVATE|CREDENTIAL|_KEY$|^TF_VAR_)", re.I)
REDACTED = "<redacted>"
# Processes remembered per tracker (a count is kept beyond that).
TRACKER_HISTORY = 10_000


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with every value whose name looks secret replaced."""
    return {k: (REDACTED if _SECRET_NAME.search(k) else v) for k, v in sorted(env.items())}


@dataclass(frozen=True)
class OutputLine:
    t: float  # seconds since the epoch
    stream: str  # "stdout" or "stderr"
    text: str


@dataclass
class RunResult:
    argv: list[str]
    cwd: str
    env: dict[str, str]  # only the variables driftsafe set, secrets redacted
    started_at: float
    ended_at: float
    returncode: int
    stdout: str
    stderr: str
    lines: list[OutputLine] = field(default_factory=list)
    timed_out: bool = False
    signal: int | None = None  # the signal that ended the process, if any

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at

    @property
    def output(self) -> str:
        """stdout and stderr interleaved in the order they were seen."""
        return "".join(line.text for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "cwd": self.cwd,
            "env": self.env,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": round(self.duration, 3),
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "signal": self.signal,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


@dataclass(frozen=True)
class StartedProcess:
    """What a tracker remembers of one process it started."""

    argv: tuple[str, ...]
    cwd: str
    pid: int
    started_at: float


class ProcessTracker:
    """The processes one engine started: how many, which, and which still run.

    ``interrupt()`` (called by the signal forwarder) passes a stop request to every
    live process and makes the tracker refuse new ones (:class:`Interrupted`), so a
    check over many roots stops instead of starting the next Terraform. The first
    signal asks for a graceful stop; any further one stops hard. Safe to call from
    a signal handler: it never blocks on a lock another frame of the same thread holds.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._live: dict[int, Process] = {}
        self._starting = 0
        self.started: deque[StartedProcess] = deque(maxlen=TRACKER_HISTORY)
        self.count = 0
        self.interrupted: int | None = None  # the first signal received
        self.signals = 0  # how many were received

    def check(self) -> None:
        """Raise :class:`Interrupted` once a signal asked us to stop."""
        if self.interrupted is not None:
            raise Interrupted(self.interrupted)

    def starting(self) -> None:
        with self._lock:
            self.check()
            self._starting += 1

    def started_one(self, proc: Process | None) -> None:
        """Record ``proc`` (None: it failed to start). A stop request that came in while
        it was being started reaches it now."""
        with self._lock:
            self._starting -= 1
            if proc is None:
                return
            self._live[proc.pid] = proc
            self.count += 1
            self.started.append(
                StartedProcess(tuple(proc.argv), proc.cwd, proc.pid, proc.started_at)
            )
            late = self.interrupted
        if late is not None:
            proc.interrupt(late, hard=self.signals > 1)

    def discard(self, proc: Process) -> None:
        with self._lock:
            if self._live.get(proc.pid) is proc:
                del self._live[proc.pid]

    def live(self) -> list[Process]:
        with self._lock:
            return [p for p in self._live.values() if p.poll() is None]

    @property
    def idle(self) -> bool:
        """Nothing running and nothing being started."""
        with self._lock:
            return self._starting == 0 and not self.live()

    def interrupt(self, signum: int) -> None:
        with self._lock:
            self.signals += 1
            if self.interrupted is None:
                self.interrupted = signum
            hard = self.signals > 1
            live = self.live()
        for proc in live:
            proc.interrupt(signum, hard=hard)


class Process:
    """A running command whose output is being captured."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str],
        shown_env: Mapping[str, str] | None = None,
        input: str | None = None,
        tee: IO[str] | None = None,
        tracker: ProcessTracker | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = str(cwd)
        self._shown_env = redact_env(shown_env or {})
        self._lines: list[OutputLine] = []
        self._cond = threading.Condition()
        self._tee = tee
        self._timed_out = False
        self._interrupted = False
        self._tracker = tracker
        self.started_at = time.time()
        if tracker is not None:
            tracker.starting()
        try:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=dict(env),
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Own session and process group: a terminal's Ctrl-C or a `timeout`
                # sent to driftsafe's group does not also reach Terraform, which must
                # get each stop request exactly once (a second one means "stop hard").
                # Signals are passed on by the tracker; a kill takes the whole group,
                # provider plugins and provisioner commands included.
                start_new_session=True,
            )
        except BaseException:
            if tracker is not None:
                tracker.started_one(None)
            raise
        self.pid = self._popen.pid
        if tracker is not None:
            tracker.started_one(self)
        self._readers = [
            threading.Thread(target=self._read, args=(self._popen.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(self._popen.stderr, "stderr"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        if input is not None:
            assert self._popen.stdin is not None
            self._popen.stdin.write(input.encode())
            self._popen.stdin.close()

    def _read(self, pipe: IO[bytes] | None, stream: str) -> None:
        assert pipe is not None
        for raw in iter(pipe.readline, b""):
            text = raw.decode("utf-8", errors="replace")
            with self._cond:
                self._lines.append(OutputLine(time.time(), stream, text))
                self._cond.notify_all()
            if self._tee is not None:
                self._tee.write(text)
                self._tee.flush()
        pipe.close()

    def lines(self) -> list[OutputLine]:
        """A snapshot of the output captured so far."""
        with self._cond:
            return list(self._lines)

    def poll(self) -> int | None:
        return self._popen.poll()

    def send_signal(self, sig: int, *, group: bool = True, even_if_exited: bool = False) -> None:
        """Deliver ``sig`` to the process (and by default its whole process group).

        ``even_if_exited`` (group only): the leader has been reaped but members of its
        group may remain; the group id cannot be reused while any of them lives.
        """
        if self._popen.poll() is not None and not (group and even_if_exited):
            return
        try:
            if group:
                os.killpg(self.pid, sig)
            else:
                self._popen.send_signal(sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def interrupt(self, signum: int, *, hard: bool = False) -> None:
        """Pass a stop request on. Only the leader (Terraform) gets the graceful one: it
        stops its provider plugins itself, and a plugin that got the signal too could
        die before Terraform has written the state. ``hard`` (a second request): the
        leader gets the signal again (Terraform then exits at once) and whatever still
        runs after ``HARD_STOP_GRACE`` seconds is killed with its whole group."""
        self._interrupted = True
        self.send_signal(graceful_signal(signum), group=False)
        if hard:
            timer = threading.Timer(HARD_STOP_GRACE, self.kill)
            timer.daemon = True
            timer.start()

    def wait_for_output(self, pattern: str | re.Pattern[str], timeout: float) -> bool:
        """Block until a captured line matches ``pattern`` (True) or timeout/exit (False)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    if regex.search(line.text):
                        return True
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self._popen.poll() is not None and not any(r.is_alive() for r in self._readers)
                ):
                    return False
                self._cond.wait(min(remaining, 0.1))

    def wait(self, timeout: float | None = None) -> RunResult:
        """Wait for exit; on timeout, interrupt (SIGINT), then kill, and mark it timed out.

        Waited for in the main thread, a SIGINT/SIGTERM/SIGHUP to driftsafe meanwhile
        is passed on to every process of the tracker (see ``engine/signals.py``).
        """
        with forward_signals(self._tracker, raise_when_idle=False):
            try:
                self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._timed_out = True
                self.interrupt(signal.SIGINT)
                try:
                    self._popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill()
                    self._popen.wait()
        if self._interrupted:
            # A stopped run leaves nothing behind: a provisioner's command or a
            # plugin that outlived Terraform goes with its process group.
            self.send_signal(signal.SIGKILL, group=True, even_if_exited=True)
        if self._tracker is not None:
            self._tracker.discard(self)
        for reader in self._readers:
            # A grandchild that kept the pipes open must not hang us forever.
            reader.join(timeout=5)
        return self.result()

    def result(self) -> RunResult:
        rc = self._popen.returncode
        if rc is None:
            raise RuntimeError("process still running")
        with self._cond:
            lines = list(self._lines)
        return RunResult(
            argv=self.argv,
            cwd=self.cwd,
            env=self._shown_env,
            started_at=self.started_at,
            ended_at=time.time(),
            returncode=rc,
            stdout="".join(x.text for x in lines if x.stream == "stdout"),
            stderr="".join(x.text for x in lines if x.stream == "stderr"),
            lines=lines,
            timed_out=self._timed_out,
            signal=-rc if rc < 0 else None,
        )
