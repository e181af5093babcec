"""What an admin can do from the console: force-unlock by typing the lock ID, restore
a version after seeing the diff it makes, download a raw state."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from driftsafe.errors import BadRequest, Forbidden
from driftsafe.server.context import workspace_name
from driftsafe.server.ui.pages import diff_values
from driftsafe.server.ui.session import Viewer, action, ctx_of, page, render, visible


def _admin(viewer: Viewer, ws: str, what: str) -> None:
    visible(viewer, ws)
    if not viewer.can("admin", ws):
        raise Forbidden(
            f"{what} needs an admin token; {viewer.name!r} has scope {viewer.token.scope!r}"
        )


async def _admin_action(request: Request, viewer: Viewer, what: str) -> str:
    """The workspace of an admin POST; a refusal is audited before the 403."""
    ctx = ctx_of(request)
    ws = workspace_name(request.path_params["workspace"])
    visible(viewer, ws)
    if not viewer.can("admin", ws):
        await ctx.call(
            ctx.store.record,
            what,
            ws,
            viewer.actor(ws),
            "forbidden",
            {"reason": "needs an admin token", "via": "console"},
        )
        _admin(viewer, ws, what)
    return ws


@action
async def unlock(request: Request, viewer: Viewer, fields: dict[str, str]) -> Response:
    """POST /ui/workspaces/{ws}/unlock: ``confirm`` must be the holder's lock ID."""
    ctx = ctx_of(request)
    ws = await _admin_action(request, viewer, "force-unlock")
    typed = fields.get("confirm", "")
    if not typed.strip():
        raise BadRequest("type the lock ID to confirm the force-unlock")
    held = await ctx.call(ctx.store.get_lock, ws)
    if held is not None and held.id != typed and held.id == typed.strip():
        typed = typed.strip()  # pasted with a space around it
    released = await ctx.call(ctx.store.force_unlock, ws, typed, viewer.actor(ws))
    ctx.metrics.inc("driftsafe_locks_total", outcome="force_released")
    ctx.metrics.observe("driftsafe_lock_hold_seconds", max(0.0, time.time() - released.acquired_at))
    return RedirectResponse(f"/ui/workspaces/{ws}?unlocked={released.id}", status_code=303)


@page
async def restore_form(request: Request, viewer: Viewer) -> Response:
    """GET /ui/workspaces/{ws}/restore?serial=N: the diff the restore makes, and the
    form that asks for the workspace name typed out."""
    ctx = ctx_of(request)
    ws = workspace_name(request.path_params["workspace"])
    _admin(viewer, ws, "restore")
    row = await ctx.call(ctx.store.console_workspace, viewer.token.workspace, ws)
    raw = request.query_params.get("serial", "")
    if not raw.isdigit():
        raise BadRequest("restore needs ?serial=N")
    if row.latest is None:
        raise BadRequest(f"{ws!r} has no versions")
    values = await diff_values(request, ws, row.latest.serial, int(raw))
    return render(
        request,
        viewer,
        "restore.html",
        title=f"Restore {ws}",
        nav="workspaces",
        ws=ws,
        row=row,
        serial=int(raw),
        **values,
    )


@action
async def restore(request: Request, viewer: Viewer, fields: dict[str, str]) -> Response:
    """POST /ui/workspaces/{ws}/restore: ``serial``, and ``confirm`` = the workspace name."""
    ctx = ctx_of(request)
    ws = await _admin_action(request, viewer, "restore")
    raw = fields.get("serial", "")
    if not raw.isdigit():
        raise BadRequest("restore needs the serial to restore")
    if fields.get("confirm", "").strip() != ws:
        raise BadRequest(f"type the workspace name ({ws}) to confirm the restore: nothing restored")
    record = await ctx.call(ctx.store.restore, ws, int(raw), viewer.actor(ws))
    ctx.metrics.inc("driftsafe_state_writes_total")
    if record.scan_pending:
        ctx.scan_later(ws, record.serial)
    return RedirectResponse(f"/ui/workspaces/{ws}/versions/{record.serial}", status_code=303)


@page
async def raw_state(request: Request, viewer: Viewer) -> Response:
    """The state as stored, secrets and all: admins only."""
    ctx = ctx_of(request)
    ws = workspace_name(request.path_params["workspace"])
    _admin(viewer, ws, "downloading a raw state")
    raw = request.path_params["serial"]
    if not raw.isdigit():
        raise BadRequest(f"serial {raw!r} is not a whole number")
    _, body = await ctx.call(ctx.store.get_version, ws, int(raw))
    await ctx.call(ctx.store.record, "download", ws, viewer.actor(ws), "ok", {"serial": int(raw)})
    name = ws.replace("/", "_") + f"-{raw}.tfstate"
    return Response(
        bytes(body),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
