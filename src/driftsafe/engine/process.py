"""Run one Terraform command as a subprocess and capture it as evidence.

Each run has an explicit environment and working directory, stdout and stderr
captured separately line by line with timestamps, an optional timeout, and signal
delivery (the drill SIGKILLs an apply mid-flight and SIGSTOPs another).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|PRIVATE|CREDENTIAL|_KEY$|^TF_VAR_)", re.I)
REDACTED = "<redacted>"


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
    ) -> None:
        self.argv = list(argv)
        self.cwd = str(cwd)
        self._shown_env = redact_env(shown_env or {})
        self._lines: list[OutputLine] = []
        self._cond = threading.Condition()
        self._tee = tee
        self._timed_out = False
        self.started_at = time.time()
        self._popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=dict(env),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Own process group: a signal to the run reaches Terraform's children
            # (the provider plugins) too, as a Ctrl-C in a terminal would.
            start_new_session=True,
        )
        self.pid = self._popen.pid
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

    def send_signal(self, sig: int, *, group: bool = True) -> None:
        """Deliver ``sig`` to the process (and by default its whole process group)."""
        if self._popen.poll() is not None:
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
        """Wait for exit; on timeout, interrupt (SIGINT), then kill, and mark it timed out."""
        try:
            self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            self.send_signal(signal.SIGINT)
            try:
                self._popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
                self._popen.wait()
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
