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
from driftsafe.server.openapi import MAX_INT
from driftsafe.state import diff_loaded
from driftsafe.store import TokenRecord
from driftsafe.timestamps import rfc3339

JSON_BODY_LIMIT = 16 * 1024 * 1024


def _ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def _bounded_int(raw: str, what: str, low: int, high: int) -> int:
    # Bounded here: an integer past 64 bits reaches the database as an overflow (500).
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{what}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{what}={raw!r} is out of range ({low}..{high})")
    return value


def _int_param(
    request: Request, name: str, default: int | None = None, *, low: int = 0, high: int = MAX_INT
) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"query parameter {name!r} is required")
        return default
    return _bounded_int(raw, f"query parameter {name}", low, high)


def _only(request: Request, *names: str) -> None:
    """Refuse query parameters the operation does not take: a misspelt one (``limt``)
    would otherwise be silently ignored."""
    unknown = sorted(set(request.query_params) - set(names))
    if unknown:
        takes = ", ".join(names) or "none"
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(map(repr, unknown))} (takes: {takes})"
        )


def _serial(raw: str) -> int:
    return _bounded_int(raw, "serial", 0, MAX_INT)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _json_body(request: Request) -> Any:
    raw = await read_body(request, JSON_BODY_LIMIT)
    try:
        # NaN and Infinity are not JSON: stored, they could never be served back.
        return json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        raise BadRequest("the body is not valid JSON (UTF-8, no NaN/Infinity)") from None
    except RecursionError:
        raise BadRequest("the body's JSON is nested too deeply") from None


async def _token(request: Request, ctx: ServerContext) -> TokenRecord:
    await ctx.auth(request, "read", None)
    token: TokenRecord = request.state.token
    return token


async def server_info(request: Request) -> Response:
    """The guarantees this server gives, read from its live configuration (any token)."""
    ctx = _ctx(request)
    _only(request)
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
    _only(request)
    token = await _token(request, ctx)
    found = await ctx.call(ctx.store.list_workspaces)
    visible = [w.to_json() for w in found if fnmatch.fnmatchcase(w.name, token.workspace)]
    return JSONResponse({"workspaces": visible})


async def versions(request: Request) -> Response:
    ctx = _ctx(request)
    _only(request, "limit")
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    limit = _int_param(request, "limit", 0, high=10_000)
    found = await ctx.call(ctx.store.list_versions, ws, limit or None)
    return JSONResponse({"workspace": ws, "versions": [v.to_json() for v in found]})


async def version(request: Request) -> Response:
    ctx = _ctx(request)
    _only(request)
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    record, body = await ctx.call(ctx.store.get_version, ws, _serial(request.path_params["serial"]))
    return JSONResponse({"version": record.to_json(), "state": json.loads(body)})


async def diff(request: Request) -> Response:
    ctx = _ctx(request)
    _only(request, "from", "to")
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    old_serial = _int_param(request, "from")
    new_serial = _int_param(request, "to")

    def body(serial: int) -> bytes:
        record, data = ctx.store.get_version(ws, serial)
        if record.encrypted_by_client:
            raise BadRequest(
                f"version {serial} of {ws!r} is encrypted by the client (OpenTofu): the "
                "server cannot read it to diff; decrypt both versions with tofu and compare "
                "the files (driftsafe state diff OLD.tfstate NEW.tfstate)"
            )
        return data

    # Compared by meaning from the stored bytes (only differing instances are parsed,
    # one whole state in memory at a time); values Terraform marks sensitive or the
    # secret scan flags read "(sensitive)".
    result = await ctx.call(
        lambda: diff_loaded(lambda: body(old_serial), lambda: body(new_serial)).to_json()
    )
    return JSONResponse(result)


async def restore(request: Request) -> Response:
    ctx = _ctx(request)
    _only(request)
    ws = workspace_name(request.path_params["workspace"])
    actor = await ctx.auth(request, "admin", ws)
    body = await _json_body(request)
    serial = body.get("serial") if isinstance(body, dict) else None
    if isinstance(serial, float) and serial.is_integer():
        serial = int(serial)  # JSON has one number type: 4.0 is the integer 4
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 <= serial <= MAX_INT:
        raise BadRequest('restore needs a JSON body {"serial": N} (N a serial, 0 or more)')
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


_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _max_age(request: Request, ctx: ServerContext) -> float:
    raw = request.query_params.get("max_age")
    if raw is None:
        return ctx.settings.lock_stale_after
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"max_age={raw!r} is not a number of seconds") from None
    if not value >= 0:  # negative, or NaN
        raise BadRequest(f"max_age={raw!r} must be a number of seconds, 0 or more")
    return value


async def lock_status(request: Request) -> Response:
    ctx = _ctx(request)
    _only(request, "max_age")
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    stale_after = _max_age(request, ctx)
    held = await ctx.call(ctx.store.get_lock, ws)
    payload = held.to_json(now=time.time(), stale_after=stale_after) if held else None
    return JSONResponse({"workspace": ws, "locked": held is not None, "lock": payload})


async def lock_release(request: Request) -> Response:
    ctx = _ctx(request)
    _only(request, "if_stale", "max_age")
    ws = workspace_name(request.path_params["workspace"])
    actor = await ctx.auth(request, "admin", ws)
    flag = request.query_params.get("if_stale", "0").lower()
    if flag not in _FLAGS:
        raise BadRequest(f"if_stale={flag!r}: use one of {', '.join(_FLAGS)}")
    if_stale = _FLAGS[flag]
    given_age = _max_age(request, ctx)
    max_age = given_age if if_stale else None
    released = await ctx.call(ctx.store.release_lock, ws, None, actor, max_age=max_age)
    ctx.metrics.inc("driftsafe_locks_total", outcome="force_released")
    ctx.metrics.observe("driftsafe_lock_hold_seconds", max(0.0, time.time() - released.acquired_at))
    stale_after = ctx.settings.lock_stale_after
    return JSONResponse({"released": released.to_json(now=time.time(), stale_after=stale_after)})


async def audit(request: Request) -> Response:
    ctx = _ctx(request)
    _only(request, "workspace", "limit")
    raw_ws = request.query_params.get("workspace")
    ws = workspace_name(raw_ws) if raw_ws is not None else None
    token = await _token(request, ctx)
    if ws is not None:
        await ctx.auth(request, "read", ws)
    limit = _int_param(request, "limit", 100, low=1, high=10_000)
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
    _only(request)
    ws = workspace_name(request.path_params["workspace"])
    actor = await ctx.auth(request, "write", ws)
    report = await _json_body(request)
    if not isinstance(report, dict):
        raise BadRequest("a drift report must be a JSON object")
    report_id, created = await ctx.call(ctx.store.add_drift_report, ws, report, actor)
    return JSONResponse({"id": report_id, "created_at": rfc3339(created)}, status_code=201)


async def drift_get(request: Request) -> Response:
    ctx = _ctx(request)
    _only(request, "limit")
    ws = workspace_name(request.path_params["workspace"])
    await ctx.auth(request, "read", ws)
    limit = _int_param(request, "limit", 50, low=1, high=1000)
    found = await ctx.call(ctx.store.drift_reports, ws, limit)
    reports = [{"id": i, "created_at": rfc3339(at), "report": r} for i, at, r in found]
    return JSONResponse({"workspace": ws, "reports": reports})


async def not_found(request: Request) -> Response:
    raise NotFound(f"no route {request.method} {request.url.path}")
