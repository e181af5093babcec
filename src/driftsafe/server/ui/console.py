"""The console's per-server state: templates, version info filled in the background,
and what the server has seen of each lock holder (for the lock panel)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftsafe.errors import DriftsafeError
from driftsafe.server.context import ServerContext
from driftsafe.server.ui.render import environment
from driftsafe.store import LockRecord, Store, VersionInfo

log = logging.getLogger("driftsafe.server")

# Version info is computed in the request for small states within this budget; the
# rest (big states) is computed by one background thread and shows up on a reload.
INFO_BUDGET = 0.5
INFO_INLINE_BYTES = 2 * 1024 * 1024
# The live lock panel holds a request open this long waiting for a change.
PANEL_WAIT = 20.0
SEEN_MAX = 10_000


class Console:
    def __init__(self, store: Store) -> None:
        self.templates: jinja2.Environment = environment()
        self.store = store
        # (workspace, token name) -> when a backend request from it was last answered
        self.seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._queued: set[tuple[str, int]] = set()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # version info --------------------------------------------------------------------

    async def fill_info(
        self, ctx: ServerContext, wanted: Sequence[tuple[str, int, int]]
    ) -> dict[tuple[str, int], VersionInfo]:
        """Info for (workspace, serial, size) rows that have none yet: small states now
        (within a time budget), the others queued for the background thread."""
        if not wanted:
            return {}

        def work() -> dict[tuple[str, int], VersionInfo]:
            done: dict[tuple[str, int], VersionInfo] = {}
            started = time.monotonic()
            for ws, serial, size in sorted(wanted, key=lambda w: w[2]):
                inline = size <= INFO_INLINE_BYTES and time.monotonic() - started < INFO_BUDGET
                if inline:
                    done[(ws, serial)] = self.store.version_info(ws, serial)
                else:
                    self._enqueue(ws, serial)
            return done

        return await ctx.call(work)

    def _enqueue(self, ws: str, serial: int) -> None:
        with self._lock:
            if (ws, serial) in self._queued or self._stop.is_set():
                return
            self._queued.add((ws, serial))
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="driftsafe-console-info", daemon=True
                )
                self._worker.start()
        self._queue.put((ws, serial))

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            try:
                self.store.version_info(*item)
            except DriftsafeError as exc:  # pruned meanwhile, store down: next view retries
                log.warning("version info of %s serial %s: %s", item[0], item[1], exc.message)
            finally:
                with self._lock:
                    self._queued.discard(item)

    def close(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)

    # locks ------------------------------------------------------------------------

    def saw(self, workspace: str, token: str) -> None:
        with self._lock:
            self.seen[(workspace, token)] = time.time()
            self.seen.move_to_end((workspace, token))
            while len(self.seen) > SEEN_MAX:
                self.seen.popitem(last=False)

    async def lock_view(
        self, ctx: ServerContext, ws: str, lock: LockRecord | None
    ) -> dict[str, Any] | None:
        if lock is None:
            return None
        now = time.time()
        age = max(0.0, now - lock.acquired_at)
        wrote = await ctx.call(ctx.store.last_write, ws, lock.id)
        with self._lock:
            request = self.seen.get((ws, lock.token or ""))
        # Only what happened while this lock was held says the holder is alive.
        request = request if request is not None and request >= lock.acquired_at else None
        return {
            "lock": lock,
            "age": age,
            "stale": age > ctx.settings.lock_stale_after,
            "stale_after": ctx.settings.lock_stale_after,
            "wrote": wrote,
            "request": request,
            "now": now,
        }

    async def wait_for_change(
        self, ctx: ServerContext, ws: str, since: str | None, request: Request
    ) -> LockRecord | None:
        """The lock on ``ws`` once its key (:func:`lock_key`) differs from ``since``, or
        after PANEL_WAIT. A release wakes this at once (in this process, or through
        PostgreSQL's NOTIFY from another); a new lock is seen within a second."""
        deadline = time.monotonic() + PANEL_WAIT
        while True:
            event = ctx.hub.subscribe(ws)
            try:
                held = await ctx.call(ctx.store.get_lock, ws)
                current = lock_key(held)
                remaining = deadline - time.monotonic()
                if since is None or current != since or remaining <= 0:
                    return held
                if await request.is_disconnected():
                    return held
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(1.0, remaining))
            finally:
                ctx.hub.unsubscribe(ws, event)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


_BACKEND = ("/v1/states/", "/v1/locks/")


class Activity:
    """Notes, for the lock panel, each backend request a token made on a workspace:
    a holder that still reads, writes or refreshes is alive."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        prefix = next((p for p in _BACKEND if path.startswith(p)), None)
        if prefix is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, capture)
        token = scope.get("state", {}).get("token")
        if token is not None and status < 400:
            self.console.saw(path[len(prefix) :], token.name)


def lock_key(lock: LockRecord | None) -> str:
    """What the live panel compares: a digest of the holder's lock ID ("" when free). A
    lock ID is whatever the client sent; a digest is always safe in a header."""
    if lock is None:
        return ""
    return hashlib.sha256(f"{lock.id}\x00{lock.acquired_at}".encode()).hexdigest()[:20]
