"""Terraform's http backend protocol: GET/POST state, LOCK/UNLOCK with LockInfo."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from driftsafe.durations import parse_duration
from driftsafe.errors import BadRequest, Conflict, DriftsafeError, Forbidden, PayloadTooLarge
from driftsafe.server.context import ServerContext, read_body, release_free_memory, workspace_name
from driftsafe.state import EncryptedState, TfState, parse_body, scan_state
from driftsafe.store import Actor, LockRecord, LockResult, VersionRecord

LOCK_BODY_LIMIT = 64 * 1024
STREAM_CHUNK = 1024 * 1024
# States up to this size are scanned for secrets before the write is answered; a
# larger one is answered first and scanned in the background (its version shows
# "scan": "pending" meanwhile), so a huge state does not hold its writer for minutes.
SCAN_INLINE_BYTES = 4 * 1024 * 1024
# The largest serial the store can hold (a signed 64-bit integer).
MAX_SERIAL = 2**63 - 1
# A LOCK ?wait= never holds a request longer than this, whatever it asks.
MAX_LOCK_WAIT = 3600.0
# LockInfo.Operation of `terraform plan`, with or without -refresh-only.
PLAN_OPERATION = "OperationTypePlan"
# Waiters re-check this often even without a wake-up (and refresh their queue place).
WAIT_POLL = 1.0


def _ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def _lockinfo_response(lock: LockRecord, status: int) -> Response:
    # Bare LockInfo: Terraform unmarshals it to print Who/Operation/Created.
    return JSONResponse(lock.lock_info(), status_code=status)


async def get_state(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    _, found = await ctx.auth_call(request, "read", ws, lambda _actor: ctx.store.latest_state(ws))
    if found is None:
        return Response(status_code=204)
    _, body = found
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    if len(body) <= STREAM_CHUNK:
        return Response(body, media_type="application/json", headers={"Content-MD5": md5})
    # Sent in slices of one buffer: a single large write would be copied again by the
    # HTTP framing and the socket's write buffer.
    headers = {"Content-MD5": md5, "Content-Length": str(len(body))}
    return StreamingResponse(_slices(body), media_type="application/json", headers=headers)


async def _slices(body: bytes) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(view), STREAM_CHUNK):
        yield bytes(view[start : start + STREAM_CHUNK])


def _check_md5(request: Request, body: bytes) -> None:
    header = request.headers.get("content-md5")
    if header is None:
        return
    try:
        expected = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"invalid Content-MD5 header {header!r}") from None
    if hashlib.md5(body).digest() != expected:
        raise BadRequest("Content-MD5 does not match the body: refused, nothing written")


def _storable(state: TfState) -> TfState:
    # What the store's columns can hold (PostgreSQL refuses more; Terraform never sends it).
    if state.serial > MAX_SERIAL:
        raise BadRequest(f"serial {state.serial} is over the largest storable ({MAX_SERIAL})")
    if len(state.lineage) > 100 or "\x00" in state.lineage:
        raise BadRequest("lineage must be at most 100 characters, without NUL")
    return state


def _prepare(body: bytes) -> tuple[TfState | EncryptedState, list[dict[str, Any]] | None]:
    try:
        if len(body) > SCAN_INLINE_BYTES:
            # Scanned later from the stored version: validate without keeping the parsed
            # tree, so a large state is not also held as Python objects.
            found = parse_body(body, keep_tree=False)
            if isinstance(found, EncryptedState):
                return found, []  # opaque: never scanned (the store marks it)
            return _storable(found), None
        parsed = parse_body(body)
        if isinstance(parsed, EncryptedState):
            # OpenTofu's encrypted envelope: opaque, so never scanned (the store marks it).
            return parsed, []
        state = _storable(parsed)
        findings = [f.to_json() for f in scan_state(state.raw)]
    except RecursionError:
        raise BadRequest("the state's JSON is nested too deeply") from None
    # The store needs only serial, lineage and counts: drop the parsed tree now.
    return dataclasses.replace(state, raw={}), findings


async def post_state(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    actor = await ctx.auth(request, "write", ws)
    lock_id = request.query_params.get("ID") or None
    try:
        body = await read_body(request, ctx.settings.max_state_bytes)
        _check_md5(request, body)
        if len(body) <= SCAN_INLINE_BYTES:
            # A small state: the rest of the write in the same worker-thread trip.
            record, created, findings = await ctx.call(
                _prepare_and_write, ctx, ws, body, actor, lock_id
            )
            return _written(ctx, ws, record, created, findings)
        state, findings = await ctx.call(_prepare, body)
    except (BadRequest, PayloadTooLarge) as exc:
        await ctx.call(
            ctx.store.record,
            "write",
            ws,
            actor,
            "rejected",
            {"lock_id": lock_id, "reason": exc.message},
        )
        ctx.metrics.inc("driftsafe_conflicts_total", kind="bad_request")
        raise
    # Encrypt first and drop the plaintext: a large state is then held once, not
    # twice, while the database copies the blob.
    sealed = await ctx.call(ctx.store.seal, ws, body)
    del body
    try:
        record, created = await ctx.call(
            ctx.store.write_state, ws, sealed, state, actor, lock_id=lock_id, findings=findings
        )
    except Conflict:
        ctx.metrics.inc("driftsafe_conflicts_total", kind="write")
        raise
    del sealed
    await ctx.call(release_free_memory)
    return _written(ctx, ws, record, created, findings)


def _prepare_and_write(
    ctx: ServerContext, ws: str, body: bytes, actor: Actor, lock_id: str | None
) -> tuple[VersionRecord, bool, list[dict[str, Any]] | None]:
    # BadRequest can only come from _prepare: write_state refuses with Conflict.
    state, findings = _prepare(body)
    try:
        record, created = ctx.store.write_state(
            ws, ctx.store.seal(ws, body), state, actor, lock_id=lock_id, findings=findings
        )
    except Conflict:
        ctx.metrics.inc("driftsafe_conflicts_total", kind="write")
        raise
    return record, created, findings


def _written(
    ctx: ServerContext,
    ws: str,
    record: VersionRecord,
    created: bool,
    findings: list[dict[str, Any]] | None,
) -> Response:
    if created:
        ctx.metrics.inc("driftsafe_state_writes_total")
        if findings is None:
            ctx.scan_later(ws, record.serial)
    return JSONResponse({"serial": record.serial, "created": created}, status_code=200)


async def _small_body(request: Request, ctx: ServerContext, ws: str) -> bytes:
    """A LOCK/UNLOCK body, read before the token check so that the check and the
    lock change share one worker-thread trip; when the body itself is refused, an
    auth failure still wins, as if the token had been checked first."""
    try:
        return await read_body(request, LOCK_BODY_LIMIT)
    except DriftsafeError:
        await ctx.auth(request, "write", ws)
        raise


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest(f"{what} body is not JSON: send Terraform's LockInfo") from None
    except RecursionError:
        raise BadRequest(f"{what} body is nested too deeply: send Terraform's LockInfo") from None


def _lock_info(raw: bytes) -> dict[str, Any]:
    info = _json(raw, "LOCK")
    if not isinstance(info, dict):
        raise BadRequest("LOCK body must be a LockInfo JSON object")
    return info


async def lock(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    raw = await _small_body(request, ctx, ws)
    wait_arg = request.query_params.get("wait")

    def attempt(actor: Actor) -> tuple[dict[str, Any], float, LockResult | None]:
        info = _lock_info(raw)
        return info, _lock_wait(info, wait_arg), ctx.store.acquire_lock(ws, info, actor)

    actor, (info, wait, result) = await ctx.auth_call(request, "write", ws, attempt)
    assert result is not None
    if result.acquired:
        # A retry (the holder's own LOCK again) is answered 200 like the first time.
        outcome = "retry" if result.lock.retry else "acquired"
        ctx.metrics.inc("driftsafe_locks_total", outcome=outcome)
        return _lockinfo_response(result.lock, 200)
    if wait <= 0 or ctx.hub.draining:
        # Shutting down: no new waits; Terraform fails clearly (or retries elsewhere).
        ctx.metrics.inc("driftsafe_locks_total", outcome="held")
        return _lockinfo_response(result.lock, 423)
    return await _wait_for_lock(request, ctx, ws, info, actor, wait, result.lock)


def _lock_wait(info: dict[str, Any], wait_arg: str | None) -> float:
    """How long this LOCK may be held open. Terraform sends the whole wait of one LOCK
    before it looks at its own ``-lock-timeout`` again, so a ``?wait=`` longer than a
    plan's ``-lock-timeout`` would make the plan wait for ``?wait=`` instead. A plan
    (refresh-only or not: what a drift check runs) therefore never waits here: it is
    answered at once and retries within its own ``-lock-timeout``. Applies and other
    writers keep ``?wait=`` and its immediate hand-over."""
    # An empty ?wait= is refused like any other bad duration, not taken as no wait.
    wait = min(parse_duration(wait_arg), MAX_LOCK_WAIT) if wait_arg is not None else 0.0
    return 0.0 if info.get("Operation") == PLAN_OPERATION else wait


async def _wait_for_lock(
    request: Request,
    ctx: ServerContext,
    ws: str,
    info: dict[str, Any],
    actor: Actor,
    wait: float,
    holder: LockRecord,
) -> Response:
    """Hold the LOCK request until the lock is ours (first come, first served across
    every server on this store) or ``wait`` runs out (then 423, like a plain LOCK)."""
    started = time.monotonic()
    deadline = started + wait
    waiter = await ctx.call(ctx.store.add_waiter, ws, wait + 5.0)
    last_touch = started
    try:
        while True:
            event = ctx.hub.subscribe(ws)
            try:
                result = await ctx.call(ctx.store.acquire_lock, ws, info, actor, waiter=waiter)
                if result is not None and result.acquired:
                    waited = time.monotonic() - started
                    ctx.metrics.inc("driftsafe_locks_total", outcome="acquired_after_wait")
                    ctx.metrics.observe("driftsafe_lock_wait_seconds", waited)
                    waiter = -1
                    return _lockinfo_response(result.lock, 200)
                if result is not None:
                    holder = result.lock
                remaining = deadline - time.monotonic()
                if remaining <= 0 or ctx.hub.draining:
                    break
                if await request.is_disconnected():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(remaining, WAIT_POLL))
            finally:
                ctx.hub.unsubscribe(ws, event)
            now = time.monotonic()
            if now - last_touch >= WAIT_POLL:
                await ctx.call(ctx.store.touch_waiter, waiter)
                last_touch = now
    finally:
        if waiter >= 0:
            await ctx.call(ctx.store.remove_waiter, waiter)
    ctx.metrics.inc("driftsafe_locks_total", outcome="wait_timeout")
    ctx.metrics.observe("driftsafe_lock_wait_seconds", time.monotonic() - started)
    current = await ctx.call(ctx.store.get_lock, ws)
    return _lockinfo_response(current or holder, 423)


async def unlock(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    raw = await _small_body(request, ctx, ws)

    def attempt(actor: Actor) -> tuple[str | None, LockRecord | dict[str, Any]]:
        if not raw.strip():
            # `terraform force-unlock` sends no body and no ID: only an admin may.
            if not actor.admin:
                ctx.store.record(
                    "force-unlock",
                    ws,
                    actor,
                    "forbidden",
                    {"reason": "UNLOCK without LockInfo needs an admin token"},
                )
                raise Forbidden(
                    f"force-unlock of {ws!r} needs an admin token (an UNLOCK without the "
                    f"holder's LockInfo breaks someone else's lock); token {actor.token!r} "
                    "is not admin"
                )
            lock_id = None
        else:
            info = _json(raw, "UNLOCK")
            lock_id = info.get("ID") if isinstance(info, dict) else None
            if not isinstance(lock_id, str) or not lock_id:
                raise BadRequest("UNLOCK LockInfo needs a string ID")
        try:
            return lock_id, ctx.store.release_lock(ws, lock_id, actor)
        except Conflict as exc:
            ctx.metrics.inc("driftsafe_conflicts_total", kind="unlock")
            if isinstance(exc.detail, dict):
                return lock_id, exc.detail
            raise

    _, (lock_id, released) = await ctx.auth_call(request, "write", ws, attempt)
    if isinstance(released, dict):  # held by another lock: Terraform wants its LockInfo
        return JSONResponse(released, status_code=409)
    if released.retry:  # released by this ID before (the answer was lost): still 200
        ctx.metrics.inc("driftsafe_locks_total", outcome="release_retry")
        return JSONResponse(released.lock_info(), status_code=200)
    ctx.metrics.observe("driftsafe_lock_hold_seconds", max(0.0, time.time() - released.acquired_at))
    ctx.metrics.inc("driftsafe_locks_total", outcome="released" if lock_id else "force_released")
    return JSONResponse(released.lock_info(), status_code=200)
