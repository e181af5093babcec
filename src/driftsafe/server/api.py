"""The JSON API (Bearer tokens): workspaces, versions, diff, restore, locks, audit, drift."""

from __future__ import annotations

import fnmatch
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from driftsafe.errors import BadRequest, NotFound
from driftsafe.server.context import ServerContext, read_body, workspace_name
from driftsafe.state import diff_states
from driftsafe.store import TokenRecord
from driftsafe.timestamps import rfc3339

JSON_BODY_LIMIT = 16 * 1024 * 1024


def _ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def _int_param(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"query parameter {name!r} is required")
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name}={raw!r} is not an integer") from None


def _serial(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"serial {raw!r} is not an integer") from None


async def _json_body(request: Request) -> Any:
    raw = await read_body(request, JSON_BODY_LIMIT)
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None


async def _token(request: Request, ctx: ServerContext) -> TokenRecord:
    await ctx.auth(request, "read", None)
    token: TokenRecord = request.state.token
    return token


async def server_info(request: Request) -> Response:
    """The guarantees this server gives, read from its live configuration (any token)."""
    ctx = _ctx(request)
    await _token(request, ctx)
    settings = ctx.settings
    store = ctx.store
    body: dict[str, Any] = {
        "database": store.database,
        "versioning": "every write",
        "retention": (
            "keep all versions"
            if store.retention == 0
            else f"keep the newest {store.retention} per workspace (never the latest)"
        ),
        "locking": {
            "lock_conflict": "423 with the holder's LockInfo",
            "server_side_wait": "LOCK ?wait=DUR",
            "stale_after_seconds": settings.lock_stale_after,
            "force_unlock": "admin token only, audited",
        },
        "fencing": "writes accepted only from the current lock holder (?ID=)",
        "encryption": f"AES-256-GCM at rest (key id {store.cipher.key_id})",
        "max_state_bytes": settings.max_state_bytes,
        "auth": "disabled (--insecure-no-auth)"
        if ctx.insecure_no_auth
        else "tokens: Basic for the backend, Bearer for the API",
    }
    return JSONResponse(body)


async def workspaces(request: Request) -> Response:
    ctx = _ctx(request)
    token = await _token(request, ctx)
    found = await ctx.call(ctx.store.list_workspaces)
    visible = [w.to_json() for w in found if fnmatch.fnmatchcase(w.name, token.workspace)]
    return JSONResponse({"workspaces": visible})


async def versions(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    limit = _int_param(request, "limit", 0)
    found = await ctx.call(ctx.store.list_versions, ws, limit or None)
    return JSONResponse({"workspace": ws, "versions": [v.to_json() for v in found]})


async def version(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    record, body = await ctx.call(ctx.store.get_version, ws, _serial(request.path_params["serial"]))
    return JSONResponse({"version": record.to_json(), "state": json.loads(body)})


async def diff(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    old_serial = _int_param(request, "from")
    new_serial = _int_param(request, "to")
    old_record, old = await ctx.call(ctx.store.get_version, ws, old_serial)
    new_record, new = await ctx.call(ctx.store.get_version, ws, new_serial)
    opaque = [r.serial for r in (old_record, new_record) if r.encrypted_by_client]
    if opaque:
        raise BadRequest(
            f"version {opaque[0]} of {ws!r} is encrypted by the client (OpenTofu): the "
            "server cannot read it to diff; decrypt both versions with tofu and compare "
            "the files (driftsafe state diff OLD.tfstate NEW.tfstate)"
        )
    result = await ctx.call(lambda: diff_states(json.loads(old), json.loads(new)).to_json())
    return JSONResponse(result)


async def restore(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    actor = await ctx.auth(request, "admin", ws)
    body = await _json_body(request)
    serial = body.get("serial") if isinstance(body, dict) else None
    if not isinstance(serial, int) or isinstance(serial, bool):
        raise BadRequest('restore needs a JSON body {"serial": N}')
    record = await ctx.call(ctx.store.restore, ws, serial, actor)
    ctx.metrics.inc("driftsafe_state_writes_total")
    if record.scan_pending:
        ctx.scan_later(ws, record.serial)
    return JSONResponse({"version": record.to_json()}, status_code=201)


async def delete_workspace(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    actor = await ctx.auth(request, "admin", ws)
    count = await ctx.call(ctx.store.delete_workspace, ws, actor)
    return JSONResponse({"workspace": ws, "deleted_versions": count})


def _max_age(request: Request, ctx: ServerContext) -> float:
    raw = request.query_params.get("max_age")
    if raw is None:
        return ctx.settings.lock_stale_after
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"max_age={raw!r} is not a number of seconds") from None


async def lock_status(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    held = await ctx.call(ctx.store.get_lock, ws)
    payload = held.to_json(now=time.time(), stale_after=_max_age(request, ctx)) if held else None
    return JSONResponse({"workspace": ws, "locked": held is not None, "lock": payload})


async def lock_release(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    actor = await ctx.auth(request, "admin", ws)
    if_stale = request.query_params.get("if_stale", "").lower() in ("1", "true", "yes")
    max_age = _max_age(request, ctx) if if_stale else None
    released = await ctx.call(ctx.store.release_lock, ws, None, actor, max_age=max_age)
    ctx.metrics.inc("driftsafe_locks_total", outcome="force_released")
    ctx.metrics.observe("driftsafe_lock_hold_seconds", max(0.0, time.time() - released.acquired_at))
    stale_after = ctx.settings.lock_stale_after
    return JSONResponse({"released": released.to_json(now=time.time(), stale_after=stale_after)})


async def audit(request: Request) -> Response:
    ctx = _ctx(request)
    raw_ws = request.query_params.get("workspace")
    ws = workspace_name(raw_ws) if raw_ws else None
    token = await _token(request, ctx)
    if ws is not None:
        await ctx.auth(request, "read", ws)
    limit = _int_param(request, "limit", 100)
    events = await ctx.call(ctx.store.audit_events, ws, limit)
    # A token limited to some workspaces sees only their events.
    visible = [
        e.to_json()
        for e in events
        if token.workspace == "*"
        or (e.workspace is not None and fnmatch.fnmatchcase(e.workspace, token.workspace))
    ]
    return JSONResponse({"events": visible})


async def drift_post(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    actor = await ctx.auth(request, "write", ws)
    report = await _json_body(request)
    if not isinstance(report, dict):
        raise BadRequest("a drift report must be a JSON object")
    report_id, created = await ctx.call(ctx.store.add_drift_report, ws, report, actor)
    return JSONResponse({"id": report_id, "created_at": rfc3339(created)}, status_code=201)


async def drift_get(request: Request) -> Response:
    ctx = _ctx(request)
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    limit = _int_param(request, "limit", 50)
    found = await ctx.call(ctx.store.drift_reports, ws, limit)
    reports = [{"id": i, "created_at": rfc3339(at), "report": r} for i, at, r in found]
    return JSONResponse({"workspace": ws, "reports": reports})


async def not_found(request: Request) -> Response:
    raise NotFound(f"no route {request.method} {request.url.path}")
