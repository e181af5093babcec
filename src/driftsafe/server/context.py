"""What every request handler needs: settings, store, metrics, the lock-wait hub."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import multiprocessing
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.pool import Pool
from typing import Concatenate, ParamSpec, TypeVar

import anyio.to_thread
from starlette.requests import Request

from driftsafe.errors import (
    AuthError,
    BadRequest,
    DriftsafeError,
    Forbidden,
    PayloadTooLarge,
    TooManyRequests,
)
from driftsafe.server.metrics import Metrics
from driftsafe.server.ratelimit import AuthLimiter
from driftsafe.server.scanjob import scan_version
from driftsafe.server.waits import WaitHub
from driftsafe.settings import Settings
from driftsafe.store import LAST_USED_EVERY, Actor, Store, TokenRecord
from driftsafe.timestamps import rfc3339

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("driftsafe.server")

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")

ANONYMOUS = TokenRecord(id="", name="anonymous", scope="admin", workspace="*", created_at=0.0)


@dataclass
class ServerContext:
    settings: Settings
    store: Store
    insecure_no_auth: bool = False
    # Said at start and by /healthz (e.g. plain HTTP on a public address).
    warnings: list[str] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    hub: WaitHub = field(default_factory=WaitHub)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    limiter: AuthLimiter = field(default_factory=AuthLimiter)

    _pool: Pool | None = None
    # token id -> when this process last recorded its use (see note_use).
    _last_use: dict[str, float] = field(default_factory=dict)

    def use_due(self, token: TokenRecord) -> bool:
        """Whether ``token``'s use should be recorded now (cheap: no store call)."""
        last = self._last_use.get(token.id, 0.0)
        return bool(token.id) and time.time() - last >= LAST_USED_EVERY

    def note_use(self, token: TokenRecord) -> None:
        """Record that ``token`` was used, at most once a minute per token (a write
        per request would make every read a write). Runs in a worker thread. A
        failed write is logged and tried again on the token's next request: the
        request itself does not depend on it."""
        if not self.use_due(token):
            return
        now = time.time()
        # Claimed before the write, so a burst of requests writes once, not once each.
        self._last_use[token.id] = now
        try:
            self.store.touch_token(token.id, now)
        except DriftsafeError as exc:
            self._last_use.pop(token.id, None)
            log.warning("could not record the last use of token %r: %s", token.name, exc.message)

    def __post_init__(self) -> None:
        self.limiter.max_failures = self.settings.auth_failure_limit

    def scan_later(self, workspace: str, serial: int) -> None:
        """Scan a stored version for secrets in a worker process, off the request
        path; the worker records the findings on the version. A scan cut short by
        shutdown is redone at the next start (the version stays marked pending)."""
        if self._pool is None:
            # spawn: a fork of this threaded process could inherit held locks.
            self._pool = multiprocessing.get_context("spawn").Pool(1)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()

        def ok(result: int) -> None:
            loop.call_soon_threadsafe(_settle, done, result, None)

        def failed(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_settle, done, None, exc)

        store = self.store
        self._pool.apply_async(
            scan_version,
            (store.url, store.cipher.key, workspace, serial),
            callback=ok,
            error_callback=failed,
        )

        async def work() -> None:
            await done

        task = asyncio.ensure_future(work())
        self.background.add(task)
        task.add_done_callback(self._scan_done)

    def _scan_done(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "secret scan failed; the version stays marked pending",
                exc_info=task.exception(),
            )

    def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    async def call(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking store call in a worker thread."""
        return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))

    async def auth(self, request: Request, scope: str, workspace: str | None) -> Actor:
        """The caller's Actor if its token covers ``scope`` on ``workspace``.

        Basic (password = token, what the backend sends) and Bearer (the API) are
        both accepted everywhere; a failure is audited and counted."""
        await self.check_rate(request, workspace)
        token = await self._token(request, workspace)
        return await self._admit(request, token, scope, workspace)

    async def auth_call(
        self,
        request: Request,
        scope: str,
        workspace: str,
        func: Callable[Concatenate[Actor, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> tuple[Actor, T]:
        """``auth`` then ``func(actor, ...)`` in one worker-thread trip (a trip costs
        about as much as the token lookup); ``func`` runs only for an allowed caller.
        Refusals are audited and counted exactly as ``auth`` does."""
        await self.check_rate(request, workspace)
        header = request.headers.get("authorization", "")
        secret = None if self.insecure_no_auth else _credentials(header)
        remote = request.client.host if request.client else None

        def work() -> tuple[TokenRecord | None, tuple[Actor, T] | None]:
            if self.insecure_no_auth:
                token: TokenRecord | None = ANONYMOUS
            else:
                token = self.store.authenticate(secret, expired=True) if secret else None
            if token is None or not token.allows(scope, workspace):
                return token, None
            self.note_use(token)
            request.state.token = token
            actor = Actor(token.name, remote, admin=token.allows("admin", workspace))
            return token, (actor, func(actor, *args, **kwargs))

        token, done = await self.call(work)
        if done is not None:
            return done
        if token is None:
            await self._refuse_unknown(request, workspace, secret)
        assert token is not None
        await self._refuse_expired(request, token, workspace)
        await self._admit(request, token, scope, workspace)  # raises Forbidden
        raise AssertionError("unreachable: the token was refused above")

    async def _admit(
        self, request: Request, token: TokenRecord, scope: str, workspace: str | None
    ) -> Actor:
        remote = request.client.host if request.client else None
        if not token.allows(scope, workspace):
            # The request log names the refused token, as the audit event does.
            request.state.token = token
            reason = (
                f"token {token.name!r} has scope {token.scope!r} on workspaces "
                f"{token.workspace!r}: {scope!r} on {workspace or 'this resource'!r} is not allowed"
            )
            self.metrics.inc("driftsafe_auth_failures_total", reason="forbidden")
            await self.call(
                self.store.record,
                "auth",
                workspace,
                Actor(token.name, remote),
                "forbidden",
                {"needed": scope, "method": request.method, "path": request.url.path},
            )
            raise Forbidden(reason)
        request.state.token = token
        return Actor(token.name, remote, admin=token.allows("admin", workspace))

    async def _token(self, request: Request, workspace: str | None) -> TokenRecord:
        if self.insecure_no_auth:
            return ANONYMOUS
        secret = _credentials(request.headers.get("authorization", ""))
        token = await self.call(self.store.authenticate, secret, expired=True) if secret else None
        if token is None:
            await self._refuse_unknown(request, workspace, secret)
        assert token is not None
        await self._refuse_expired(request, token, workspace)
        if self.use_due(token):  # a worker-thread trip only once a minute per token
            await self.call(self.note_use, token)
        return token

    async def _refuse_expired(
        self, request: Request, token: TokenRecord, workspace: str | None
    ) -> None:
        """401 for an expired token, saying so (and audited with its name): the
        holder must be told to rotate it, not to look for a typo."""
        if not token.expired():
            return
        assert token.expires_at is not None
        request.state.token = token
        remote = request.client.host if request.client else None
        why = f"token {token.name!r} expired at {rfc3339(token.expires_at)}"
        self.metrics.inc("driftsafe_auth_failures_total", reason="expired")
        await self.call(
            self.store.record,
            "auth",
            workspace,
            Actor(token.name, remote),
            "unauthenticated",
            {"reason": why, "method": request.method, "path": request.url.path},
        )
        raise AuthError(
            f"{why}: an admin can issue a new secret with `driftsafe token rotate {token.name}`"
        )

    async def check_rate(self, request: Request, workspace: str | None) -> None:
        """Refuse (429) any credential from an address with too many recent failures:
        a guesser gets no answer about any token, right or wrong, until it waits."""
        if self.insecure_no_auth:
            return
        remote = request.client.host if request.client else ""
        wait = self.limiter.retry_after(remote)
        if wait is None:
            return
        self.metrics.inc("driftsafe_auth_failures_total", reason="rate_limited")
        if self.limiter.first_refusal(remote):
            await self.call(
                self.store.record,
                "auth",
                workspace,
                Actor(None, remote or None),
                "rate-limited",
                {
                    "failures": self.limiter.max_failures,
                    "window_seconds": self.limiter.window,
                    "retry_after": wait,
                    "method": request.method,
                    "path": request.url.path,
                },
            )
        raise TooManyRequests(
            f"too many failed authentications from {remote or 'this address'}: "
            f"try again in {wait} s",
            retry_after=wait,
        )

    async def _refuse_unknown(
        self, request: Request, workspace: str | None, secret: str | None
    ) -> None:
        remote = request.client.host if request.client else None
        why = "missing credentials" if not secret else "unknown or revoked token"
        if secret:  # a wrong guess (a request with no credentials guesses nothing)
            self.limiter.failed(remote or "")
        self.metrics.inc("driftsafe_auth_failures_total", reason="unauthenticated")
        await self.call(
            self.store.record,
            "auth",
            workspace,
            Actor(None, remote),
            "unauthenticated",
            {"reason": why, "method": request.method, "path": request.url.path},
        )
        raise AuthError(
            f"{why}: send the token as HTTP Basic password (backend: TF_HTTP_PASSWORD) "
            "or as Authorization: Bearer TOKEN (API)"
        )


def _settle(future: asyncio.Future[int], result: int | None, exc: BaseException | None) -> None:
    if future.done():  # cancelled by shutdown meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert result is not None
        future.set_result(result)


def _credentials(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        password = decoded.partition(":")[2]
        return password or None
    return None


def workspace_name(raw: str) -> str:
    """Validate a workspace: ``/``-separated segments of ``[A-Za-z0-9._-]``."""
    segments = raw.split("/")
    if (
        not raw
        or len(raw) > 400
        or any(not _SEGMENT.match(s) or s in (".", "..") for s in segments)
    ):
        raise BadRequest(
            f"invalid workspace name {raw!r}: use /-separated segments of A-Z a-z 0-9 . _ -"
        )
    return raw


# A body of a declared length above this is read into one buffer of that length: as
# chunks joined at the end it would be held twice at the join.
_PREALLOCATE_OVER = 1024 * 1024


async def _read_declared(request: Request, size: int) -> bytes:
    body = bytearray(size)
    view = memoryview(body)
    filled = 0
    async for chunk in request.stream():
        end = filled + len(chunk)
        if end > size:
            raise BadRequest(f"body is longer than its Content-Length of {size} bytes")
        view[filled:end] = chunk
        filled = end
    view.release()
    if filled != size:
        raise BadRequest(f"body of {filled} bytes is shorter than its Content-Length of {size}")
    # A bytearray serves every reader of a body (hashing, parsing, compressing).
    return body  # type: ignore[return-value]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it exceeds ``limit``: a declared
    Content-Length over the limit is refused before reading anything."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"invalid Content-Length {declared!r}") from None
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes is over the limit of {limit} bytes")
        if size > _PREALLOCATE_OVER:
            return await _read_declared(request, size)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    chunks.clear()
    return body


def release_free_memory() -> None:
    """Hand memory freed after a large request back to the OS (glibc keeps it in
    per-thread arenas otherwise, and the server's footprint would stay at its peak)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:  # glibc only
        trim(0)


# glibc's M_MMAP_THRESHOLD (mallopt parameter number).
_M_MMAP_THRESHOLD = -3
_MMAP_OVER = 1024 * 1024


def tune_malloc() -> None:
    """Serve every allocation over 1 MiB (state bodies) from its own mapping, given back
    to the OS when freed. glibc otherwise raises that threshold after the first big
    free, and later bodies land on heaps that keep their pages: a diff of two 20 MiB
    states then peaked at 4x their size instead of about 2x."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)
    if mallopt is not None:  # glibc only
        mallopt(_M_MMAP_THRESHOLD, _MMAP_OVER)
