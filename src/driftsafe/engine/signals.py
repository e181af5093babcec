"""Stopping driftsafe stops Terraform: SIGINT, SIGTERM and SIGHUP are passed on.

Terraform's own rule is followed: the first signal asks for a graceful stop (the
operation in flight finishes or is cancelled, the state is written, the lock
released), a second one stops hard. driftsafe never exits before the Terraform it
started, so no Terraform is left running, re-parented to PID 1 and holding a lock.

Two ways, for two kinds of run:

- Captured runs (:class:`~driftsafe.engine.Process`: drift check, resolve, the drill)
  put Terraform in its own session. :func:`forward_signals` installs handlers (main
  thread only) that hand each signal to the engine's :class:`ProcessTracker`, which
  passes it to every live process and refuses to start new ones. ``Process.wait``
  installs them by itself; a command that runs Terraform from worker threads, or
  that must not die between two runs, wraps its whole work in ``forward_signals``.
- ``driftsafe tf`` (:func:`run_passthrough`) gives Terraform the terminal. A signal
  the terminal sends (Ctrl-C) reaches Terraform directly, so it is not sent again;
  a signal sent to driftsafe alone (``kill``, a CI runner cancelling, ``timeout``)
  is passed on once. Where there is no terminal to share, Terraform gets its own
  process group, so a signal to driftsafe's group is not delivered twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from driftsafe.errors import Interrupted

if TYPE_CHECKING:
    from driftsafe.engine.process import ProcessTracker

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# After a second signal (a hard stop), what is still running this long is killed.
HARD_STOP_GRACE = 5.0


def graceful_signal(signum: int) -> int:
    """The signal that asks Terraform for a graceful stop on behalf of ``signum``.

    Terraform stops gracefully on SIGINT and SIGTERM (it finishes or cancels the
    operation in flight, writes the state and releases the lock), but dies at once on
    SIGHUP, leaving its lock behind. A closed terminal is a request to stop, not a
    reason to lose state: SIGHUP is passed on as SIGTERM.
    """
    return signal.SIGTERM if signum == signal.SIGHUP else signum


class _Forwarder:
    """The installed handler: passes each signal to one tracker (and to the forwarder
    it replaced, when commands nest, e.g. the drill inside a test)."""

    def __init__(
        self, tracker: ProcessTracker, previous: dict[int, Any], raise_when_idle: bool
    ) -> None:
        self.tracker = tracker
        self.previous = previous
        self.raise_when_idle = raise_when_idle

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.tracker.interrupt(signum)
        before = self.previous.get(signum)
        if isinstance(before, _Forwarder) and before.tracker is not self.tracker:
            before(signum, frame)
        if self.raise_when_idle and self.tracker.idle:
            # Nothing to wait for: stop the command where it is, as the default
            # handlers would, but as an error the command reports and cleans up after.
            raise Interrupted(signum)


@contextlib.contextmanager
def forward_signals(
    tracker: ProcessTracker | None, *, raise_when_idle: bool = True
) -> Iterator[ProcessTracker | None]:
    """While inside, SIGINT/SIGTERM/SIGHUP are passed to ``tracker``'s processes.

    ``raise_when_idle``: a signal that arrives while none of them runs raises
    :class:`Interrupted` at once (otherwise it is only recorded, and the next start
    raises). A no-op outside the main thread (Python runs handlers only there) and
    when the same kind of forwarder is already installed; nested forwarders for other
    trackers chain, so each signal reaches every tracker once.
    """
    if tracker is None or threading.current_thread() is not threading.main_thread():
        yield tracker
        return
    current = signal.getsignal(signal.SIGTERM)
    if (
        isinstance(current, _Forwarder)
        and current.tracker is tracker
        and current.raise_when_idle == raise_when_idle
    ):
        yield tracker
        return
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in FORWARDED}
    handler = _Forwarder(tracker, previous, raise_when_idle)
    for sig in FORWARDED:
        if previous[sig] == signal.SIG_IGN:
            continue  # started with it ignored (nohup): keep it so
        signal.signal(sig, handler)
    try:
        yield tracker
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before if before is not None else signal.SIG_DFL)


# -- driftsafe tf: Terraform on the terminal ----------------------------------------

_WATCHED = (*FORWARDED, signal.SIGCHLD)


def _shares_terminal() -> bool:
    """Is driftsafe in the terminal's foreground process group? Then Terraform stays
    in it too: it can prompt ("Enter a value:"), and Ctrl-C and Ctrl-Z work on it as
    on plain terraform."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def run_passthrough(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    on_hard_stop: Callable[[], None] | None = None,
) -> int:
    """Run ``argv`` on this process's stdin/stdout/stderr; return its exit code, or
    128+N when a signal N ended it. Must run in the main thread of a process with no
    other threads (the CLI): signals are blocked and taken with ``sigtimedwait`` so
    that their sender can be told apart.

    ``on_hard_stop`` runs after Terraform was stopped hard (a second signal), e.g. to
    say that the state lock may have been left behind.
    """
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    try:
        shared = _shares_terminal()
        # Terraform starts with driftsafe's original mask and with the dispositions
        # Python changed put back (as subprocess does).
        options: dict[str, Any] = {
            "setsigmask": old_mask,
            "setsigdef": (signal.SIGPIPE, signal.SIGXFSZ),
        }
        if not shared:
            options["setpgroup"] = 0
        try:
            pid = os.posix_spawn(argv[0], list(argv), env, **options)
        except OSError as exc:
            from driftsafe.errors import EngineError

            raise EngineError(f"cannot start {argv[0]}: {exc}") from exc
        status, hard = _supervise(pid, shared)
    finally:
        # A signal still pending now (it came as Terraform exited) has been dealt with:
        # take it before unblocking, or it would kill driftsafe after the fact.
        while signal.sigtimedwait(_WATCHED, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    if hard and on_hard_stop is not None:
        on_hard_stop()
    return status


def _supervise(pid: int, shared: bool) -> tuple[int, bool]:
    """Wait for ``pid``, passing signals on; (exit status as a shell shows it, hard)."""
    received = 0
    kill_at: float | None = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        wait = 1.0 if kill_at is None else max(0.0, kill_at - time.monotonic())
        info = signal.sigtimedwait(_WATCHED, wait)
        if kill_at is not None and time.monotonic() >= kill_at:
            _kill(pid, shared)
            kill_at = float("inf")  # once
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        received += 1
        # si_code > 0 (SI_KERNEL): the terminal sent it to its whole foreground group,
        # Terraform included. Sent by a process (kill, a CI runner): driftsafe alone.
        if not (shared and info.si_code > 0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, graceful_signal(info.si_signo))
        if received > 1 and kill_at is None:
            kill_at = time.monotonic() + HARD_STOP_GRACE
    if received and not shared:
        # Stopped on request: whatever Terraform leaves in its group goes with it
        # (a provisioner's command it abandoned, say).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    code = os.waitstatus_to_exitcode(status)
    return (128 - code if code < 0 else code), received > 1


def _kill(pid: int, shared: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if shared:
            os.kill(pid, signal.SIGKILL)  # its group is ours
        else:
            os.killpg(pid, signal.SIGKILL)
