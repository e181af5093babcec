"""The console's pages: workspaces, a workspace (versions, resources, drift, audit), a
version, a diff, the audit log. Server-rendered; nothing here needs JavaScript."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftsafe.errors import BadRequest, NotFound
from driftsafe.server.context import release_free_memory, workspace_name
from driftsafe.server.ui import charts
from driftsafe.server.ui.console import console_of, lock_key
from driftsafe.server.ui.session import Viewer, ctx_of, page, render, visible
from driftsafe.state import SecretPaths, attribute_rows, diff_loaded, output_rows, resource_rows
from driftsafe.store import AuditFilter, Page, WorkspaceRow

PAGE = 50
RESOURCES_PAGE = 100
TABS = ("versions", "resources", "drift", "audit")


def _int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r} is not a whole number") from None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "") in ("1", "on", "true", "yes")


async def _workspace(request: Request, viewer: Viewer) -> tuple[str, WorkspaceRow]:
    ctx = ctx_of(request)
    ws = workspace_name(request.path_params["workspace"])
    visible(viewer, ws)
    row = await ctx.call(ctx.store.console_workspace, viewer.token.workspace, ws)
    return ws, row


@page
async def workspaces(request: Request, viewer: Viewer) -> Response:
    ctx = ctx_of(request)
    search = request.query_params.get("q", "")[:200]
    locked, drifted = _flag(request, "locked"), _flag(request, "drifted")
    findings = _flag(request, "findings")
    filters: dict[str, Any] = {
        "q": search,
        "locked": locked,
        "drifted": drifted,
        "findings": findings,
    }
    found: Page = await ctx.call(
        lambda: ctx.store.console_workspaces(
            viewer.token.workspace,
            search=search,
            locked=locked,
            drifted=drifted,
            findings=findings,
            nxt=request.query_params.get("next") or None,
            prv=request.query_params.get("prev") or None,
            limit=PAGE,
        )
    )
    infos = await console_of(request).fill_info(
        ctx,
        [(r.name, r.latest.serial, r.latest.size) for r in found.rows if r.latest and not r.info],
    )
    query = {k: ("1" if v is True else v) for k, v in filters.items() if v}
    return render(
        request,
        viewer,
        "workspaces.html",
        title="Workspaces",
        nav="workspaces",
        page=found,
        filters=filters,
        query=query,
        infos=infos,
        now=time.time(),
        stale_after=ctx.settings.lock_stale_after,
    )


@page
async def workspace(request: Request, viewer: Viewer) -> Response:
    ctx = ctx_of(request)
    ws, row = await _workspace(request, viewer)
    tab = request.query_params.get("tab", "versions")
    if tab not in TABS:
        raise BadRequest(f"tab={tab!r}: one of {', '.join(TABS)}")
    console = console_of(request)
    values: dict[str, Any] = {"infos": {}}
    if tab == "versions":
        found: Page = await ctx.call(
            lambda: ctx.store.console_versions(
                ws, nxt=_int(request, "next"), prv=_int(request, "prev"), limit=PAGE
            )
        )
        values["infos"] = await console.fill_info(
            ctx, [(ws, r.version.serial, r.version.size) for r in found.rows if not r.info]
        )
        values["page"] = found
    elif tab == "resources":
        values.update(await _browser(request, ws, row.latest.serial if row.latest else None))
    elif tab == "drift":
        values.update(await _drift(request, ws))
    else:
        values.update(await _audit_page(request, viewer, ws))
    return render(
        request,
        viewer,
        "workspace.html",
        title=ws,
        nav="workspaces",
        ws=ws,
        row=row,
        tab=tab,
        tabs=TABS,
        lock=await console.lock_view(ctx, ws, row.lock),
        lock_key=lock_key(row.lock),
        **values,
    )


async def lock_panel(request: Request) -> Response:
    """The lock panel alone, for the live refresh: ``?since=`` is the key of the lock
    the page shows (empty: none); the answer waits (up to 20 s) for a change."""

    async def show(request: Request, viewer: Viewer) -> Response:
        ctx = ctx_of(request)
        ws = workspace_name(request.path_params["workspace"])
        visible(viewer, ws)
        await ctx.call(ctx.store.console_workspace, viewer.token.workspace, ws)
        console = console_of(request)
        since = request.query_params.get("since")
        held = await console.wait_for_change(ctx, ws, since, request)
        response = render(
            request,
            viewer,
            "_lock.html",
            ws=ws,
            lock=await console.lock_view(ctx, ws, held),
            lock_key=lock_key(held),
        )
        response.headers["X-Lock-Key"] = lock_key(held)
        return response

    return await page(show)(request)


async def _browser(request: Request, ws: str, serial: int | None) -> dict[str, Any]:
    """A version's resources: filtered, paginated, one resource's attributes on demand."""
    ctx = ctx_of(request)
    if serial is None:
        return {"resources": None}
    query = request.query_params.get("q", "")[:200].lower()
    start = max(0, _int(request, "start") or 0)
    wanted = request.query_params.get("resource")

    def build() -> dict[str, Any]:
        _, body = ctx.store.get_version(ws, serial)
        rows, outputs = resource_rows(body)
        del body
        shown = [r for r in rows if query in r.address.lower()] if query else rows
        scanner = SecretPaths()
        opened = None
        if wanted is not None:
            match = next((r for r in rows if r.address == wanted), None)
            if match is None:
                raise NotFound(f"no resource {wanted!r} in serial {serial}")
            opened = (match, attribute_rows(match.instance(), scanner))
        return {
            "resources": shown[start : start + RESOURCES_PAGE],
            "resource_total": len(shown),
            "resource_all": len(rows),
            "start": start,
            "step": RESOURCES_PAGE,
            "q": query,
            "opened": opened,
            "outputs": output_rows(outputs, scanner),
            "serial": serial,
        }

    return await ctx.call(build)


async def _drift(request: Request, ws: str) -> dict[str, Any]:
    ctx = ctx_of(request)
    history = await ctx.call(ctx.store.drift_history, ws, 200)
    latest = await ctx.call(ctx.store.drift_reports, ws, 1)
    report = latest[0][2] if latest else None
    error = report.get("error") if report else None
    if isinstance(error, dict):
        error = error.get("message") or error.get("code")
    return {
        "report_status": str(report.get("status", "unknown")) if report else "",
        "report_error": str(error) if error else "",
        "history": history,
        "drift_svg": charts.drift_timeline(history, now=time.time()),
        "report": report,
        "drift_rows": charts.drift_findings(report) if report else [],
        "report_at": latest[0][1] if latest else None,
    }


def _audit_filter(request: Request, viewer: Viewer, ws: str | None) -> AuditFilter:
    raw_ws = ws or request.query_params.get("workspace") or None
    if raw_ws is not None:
        raw_ws = workspace_name(raw_ws)
        visible(viewer, raw_ws)
    return AuditFilter(
        workspace=raw_ws,
        action=request.query_params.get("action") or None,
        token=request.query_params.get("token") or None,
        since=charts.parse_time(request.query_params.get("since")),
        until=charts.parse_time(request.query_params.get("until")),
        glob=viewer.token.workspace,
    )


async def _audit_page(request: Request, viewer: Viewer, ws: str | None) -> dict[str, Any]:
    ctx = ctx_of(request)
    where = _audit_filter(request, viewer, ws)
    found: Page = await ctx.call(
        lambda: ctx.store.console_audit(
            where, nxt=_int(request, "next"), prv=_int(request, "prev"), limit=PAGE
        )
    )
    spans = None
    if where.workspace is not None:
        now = time.time()
        events = await ctx.call(ctx.store.lock_events, where.workspace, now - 86400)
        spans = charts.lock_spans(events, now=now)
    query = {
        k: v
        for k, v in request.query_params.items()
        if k in ("workspace", "action", "token", "since", "until", "tab") and v
    }
    return {
        "events": found,
        "where": where,
        "actions": await ctx.call(ctx.store.audit_actions),
        "spans_svg": spans,
        "audit_query": query,
        "raw_since": request.query_params.get("since", ""),
        "raw_until": request.query_params.get("until", ""),
    }


@page
async def audit(request: Request, viewer: Viewer) -> Response:
    values = await _audit_page(request, viewer, None)
    return render(request, viewer, "audit.html", title="Audit", nav="audit", **values)


@page
async def version(request: Request, viewer: Viewer) -> Response:
    ctx = ctx_of(request)
    ws, row = await _workspace(request, viewer)
    serial = _path_serial(request)
    record, _ = await ctx.call(lambda: (ctx.store.get_version(ws, serial)[0], None))
    infos = await console_of(request).fill_info(ctx, [(ws, serial, record.size)])
    values = await _browser(request, ws, serial)
    return render(
        request,
        viewer,
        "version.html",
        title=f"{ws} serial {serial}",
        nav="workspaces",
        ws=ws,
        row=row,
        version=record,
        info=infos.get((ws, serial)),
        can_admin=viewer.can("admin", ws),
        **values,
    )


def _path_serial(request: Request) -> int:
    raw = request.path_params["serial"]
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"serial {raw!r} is not a whole number") from None


async def diff_values(request: Request, ws: str, old: int, new: int) -> dict[str, Any]:
    ctx = ctx_of(request)

    def build() -> dict[str, Any]:
        found = diff_loaded(
            lambda: ctx.store.get_version(ws, old)[1], lambda: ctx.store.get_version(ws, new)[1]
        )
        return {"diff": found, "old": old, "new": new}

    result = await ctx.call(build)
    await ctx.call(release_free_memory)
    return result


@page
async def diff(request: Request, viewer: Viewer) -> Response:
    ws, row = await _workspace(request, viewer)
    old, new = _int(request, "from"), _int(request, "to")
    if old is None or new is None:
        raise BadRequest("a diff needs two serials: ?from=A&to=B")
    values = await diff_values(request, ws, old, new)
    return render(
        request,
        viewer,
        "diff.html",
        title=f"{ws}: serial {old} -> {new}",
        nav="workspaces",
        ws=ws,
        row=row,
        **values,
    )
