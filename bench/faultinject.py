"""The faults of bench/faults.py: server processes that are killed, frozen and
restarted, PostgreSQL restarts, and the schedule that injects them (and arms the
proxies' faults), drawn from the run's seed."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import faultproxy
import pgcontrol
from faultclient import Client

KILL9 = "kill9"
SIGSTOP = "sigstop"
KILL_WITH_WAITERS = "kill_server_with_waiters"
PG_RESTART = "pg_restart"


class ServerProc:
    """``driftsafe serve`` as a process that can be killed, frozen and restarted on its
    port; its last log lines are kept for the report."""

    def __init__(self, name: str, db: str, env: dict[str, str]) -> None:
        self.name = name
        self.db = db
        self.env = env
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.lines: deque[str] = deque(maxlen=200)
        self.down = True  # killed and not yet back, or frozen
        self.starts = 0
        self._drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        ready = threading.Event()
        self.lines.clear()  # this process's lines only
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "driftsafe", "serve", "--db", self.db, "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        proc = self.proc

        def drain() -> None:
            assert proc.stderr is not None
            with proc.stderr:
                for line in proc.stderr:
                    self.lines.append(line.rstrip())
                    if line.startswith("driftsafe serve: listening on "):
                        ready.set()

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + 60
        while not ready.is_set():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n" + "\n".join(self.lines))
            await asyncio.sleep(0.02)
        if self.port == 0:
            listening = [x for x in self.lines if "listening on" in x][-1]
            self.port = int(listening.rsplit(":", 1)[1])
        self.starts += 1
        self.down = False

    def kill9(self) -> None:
        assert self.proc is not None
        self.down = True
        self.proc.kill()
        self.proc.wait(30)
        if self._drain is not None:
            self._drain.join(10)

    def freeze(self) -> None:
        assert self.proc is not None
        self.down = True
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.down = False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # never leave a frozen process behind
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        if self._drain is not None:
            self._drain.join(10)


@dataclass
class Run:
    servers: list[ServerProc]
    proxies: list[faultproxy.FaultProxy]
    clients: list[Client]
    rng: random.Random
    faults: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def up_server(self, exclude: set[int] = frozenset()) -> int | None:  # type: ignore[assignment]
        """An up server whose loss leaves another one up."""
        up = [i for i, s in enumerate(self.servers) if not s.down and i not in exclude]
        if len(up) < 2:
            return None
        return self.rng.choice(up)

    async def _pick(self, until: float, waiters: bool = False) -> int | None:
        while time.monotonic() < until:
            index = self.up_server()
            if waiters:
                now = time.monotonic()
                parked = {
                    c.server
                    for c in self.clients
                    if c.waiting_since is not None and now - c.waiting_since > 0.3
                }
                candidates = [i for i in parked if not self.servers[i].down]
                others_up = sum(not s.down for s in self.servers) >= 2
                index = self.rng.choice(sorted(candidates)) if candidates and others_up else None
            if index is not None:
                return index
            await asyncio.sleep(0.05)
        return None

    async def server_fault(self, kind: str, until: float) -> None:
        if kind == PG_RESTART:
            await asyncio.to_thread(pgcontrol.restart)
            self.faults[kind] += 1
            return
        index = await self._pick(until, waiters=kind == KILL_WITH_WAITERS)
        if index is None:
            self.notes.append(f"{kind}: no server could be taken down in its slot")
            return
        server = self.servers[index]
        if kind == SIGSTOP:
            server.freeze()
            self.faults[kind] += 1
            try:
                await asyncio.sleep(self.rng.uniform(0.5, 2.5))
            finally:
                server.thaw()
            return
        server.kill9()
        self.faults[kind] += 1
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await self.restart(server)

    async def restart(self, server: ServerProc) -> None:
        # A start can fail while PostgreSQL restarts under it: try again, bounded.
        for attempt in range(5):
            try:
                await server.start()
                return
            except RuntimeError as exc:
                if attempt == 4:
                    raise
                last = server.lines[-1] if server.lines else str(exc)
                self.notes.append(f"{server.name} failed to start, retried: {last:.200}")
                await asyncio.sleep(1.0)


def _slots(
    kinds: list[str], per_kind: int, start: float, span: float, rng: random.Random
) -> list[tuple[float, str]]:
    """(time, kind) for ``per_kind`` faults of each kind spread over ``span``: rounds
    in which every kind comes once, in a shuffled order."""
    order: list[str] = []
    for _ in range(per_kind):
        round_ = list(kinds)
        rng.shuffle(round_)
        order += round_
    step = span / max(1, len(order))
    return [(start + (n + 0.5) * step, kind) for n, kind in enumerate(order)]


async def inject_server_faults(run: Run, kinds: list[str], per_kind: int, span: float) -> None:
    start = time.monotonic()
    slots = _slots(kinds, per_kind, start, span, run.rng)
    pending: set[asyncio.Task[None]] = set()
    try:
        for n, (at, kind) in enumerate(slots):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            until = slots[n + 1][0] if n + 1 < len(slots) else start + span
            # A fault may look for its moment (a server with waiters) a little past its slot.
            task = asyncio.ensure_future(run.server_fault(kind, max(until, at + 2.0) + 5.0))
            pending.add(task)
            task.add_done_callback(pending.discard)
    finally:
        # Every frozen server is thawed and every killed one restarted before this ends.
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                run.notes.append(f"a fault failed: {result!r}")


async def inject_proxy_faults(run: Run, per_kind: int, span: float) -> None:
    start = time.monotonic()
    # A few spare ones: a fault counts when applied, and the last armed may find no traffic.
    slots = _slots(list(faultproxy.KINDS), per_kind + 2, start, span, run.rng)
    for at, kind in slots:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        run.rng.choice(run.proxies).arm(kind)
