"""The ASGI application: routes, error rendering, request logs and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftsafe import __version__
from driftsafe.errors import DriftsafeError, StoreError
from driftsafe.server import api, backend, ui
from driftsafe.server.context import ServerContext, tune_malloc
from driftsafe.server.openapi import openapi_document
from driftsafe.settings import Settings
from driftsafe.store import Store

log = logging.getLogger("driftsafe.server")

WS = "{workspace:path}"


async def healthz(request: Request) -> Response:
    """200 when this server can serve; 503 with the reason (and Retry-After) when its
    database is unreachable or it is shutting down."""
    ctx: ServerContext = request.app.state.ctx
    database = ctx.store.database
    body: dict[str, Any]
    if ctx.hub.draining:
        body = {"status": "shutting_down", "database": database, "error": "server is stopping"}
        return JSONResponse(body, status_code=503)
    try:
        await ctx.call(ctx.store.ping)
    except StoreError as exc:
        body = {"status": "unavailable", "database": database, "error": exc.message}
        return JSONResponse(body, status_code=503, headers=_retry_after(exc))
    body = {"status": "ok", "version": __version__, "database": database}
    listening = ctx.store.listening()
    if listening is not None:
        # Lock hand-over across servers rides on LISTEN: while it reconnects, waiters
        # fall back to polling (slower hand-over, still correct).
        body["lock_notifications"] = "listening" if listening else "reconnecting"
    if ctx.warnings:
        body["warnings"] = list(ctx.warnings)
    return JSONResponse(body)


def _retry_after(exc: DriftsafeError) -> dict[str, str] | None:
    seconds = getattr(exc, "retry_after", None)
    return {"Retry-After": str(seconds)} if seconds else None


async def metrics(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    return PlainTextResponse(ctx.metrics.render(), media_type="text/plain; version=0.0.4")


Endpoint = Callable[[Request], Awaitable[Response]]


def _openapi_route(document: dict[str, Any]) -> Endpoint:
    async def openapi(request: Request) -> Response:
        # A description only, no data: served without a token, as API tools expect.
        return JSONResponse(document)

    return openapi


def _by_method(handlers: dict[str, Endpoint]) -> Endpoint:
    """One endpoint for the methods of one path, so that a method it does not take
    is answered 405 with an ``Allow`` that lists them all."""

    async def endpoint(request: Request) -> Response:
        # Starlette adds HEAD wherever GET is (and drops the body itself).
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


def _route(path: str, handlers: dict[str, Endpoint]) -> Route:
    return Route(path, _by_method(handlers), methods=list(handlers))


def _routes() -> list[Route]:
    ws = f"/api/v1/workspaces/{WS}"
    return [
        Route("/api/v1/openapi.json", _openapi_route(openapi_document()), methods=["GET"]),
        _route(f"/v1/states/{WS}", {"GET": backend.get_state, "POST": backend.post_state}),
        _route(
            f"/v1/locks/{WS}",
            {
                "LOCK": backend.lock,
                "POST": backend.lock,
                "UNLOCK": backend.unlock,
                "DELETE": backend.unlock,
            },
        ),
        Route("/api/v1/server", api.server_info, methods=["GET"]),
        Route("/api/v1/workspaces", api.workspaces, methods=["GET"]),
        Route(f"{ws}/versions/{{serial}}", api.version, methods=["GET"]),
        Route(f"{ws}/versions", api.versions, methods=["GET"]),
        Route(f"{ws}/diff", api.diff, methods=["GET"]),
        Route(f"{ws}/restore", api.restore, methods=["POST"]),
        _route(f"{ws}/lock", {"GET": api.lock_status, "DELETE": api.lock_release}),
        _route(f"{ws}/drift", {"GET": api.drift_get, "POST": api.drift_post}),
        # After the routes above: {workspace:path} would also match ".../lock".
        Route(ws, api.delete_workspace, methods=["DELETE"]),
        Route("/api/v1/audit", api.audit, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        # The web console (server/ui/): its pages, forms and assets under /ui/.
        Route("/ui", _to_console, methods=["GET"]),
        *ui.routes(),
    ]


async def _to_console(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=308)


async def _driftsafe_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DriftsafeError)
    headers = {"WWW-Authenticate": 'Basic realm="driftsafe"'} if exc.http_status == 401 else {}
    headers.update(_retry_after(exc) or {})
    return JSONResponse(exc.to_json(), status_code=exc.http_status, headers=headers or None)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {
        "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}", "detail": None}
    }
    return JSONResponse(body, status_code=500)


class AccessLog:
    """One structured log line and latency sample per request."""

    def __init__(self, app: ASGIApp, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.monotonic() - started
            route = _route_label(scope["path"])
            self.ctx.metrics.inc(
                "driftsafe_http_requests_total",
                method=scope["method"],
                route=route,
                status=str(status),
            )
            self.ctx.metrics.observe("driftsafe_request_seconds", elapsed, route=route)
            state: dict[str, Any] = scope.get("state", {})
            token = state.get("token")
            client = scope.get("client")
            log.info(
                "request",
                extra={
                    "event": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round(elapsed * 1000, 1),
                        "token": getattr(token, "name", None),
                        "remote": client[0] if client else None,
                    }
                },
            )


def _route_label(path: str) -> str:
    for prefix in ("/v1/states/", "/v1/locks/", "/api/v1/workspaces/", "/api/v1/"):
        if path.startswith(prefix):
            return prefix.rstrip("/")
    if path.startswith("/ui/"):
        return "/ui"
    return path if path in ("/healthz", "/metrics", "/api/v1/workspaces") else "other"


def begin_shutdown(app: ASGIApp) -> None:
    """The server stops accepting: answer the LOCK ?wait= requests it holds now (423
    with the holder) and take no new waits. Callable from any thread."""
    if isinstance(app, AccessLog):
        app.ctx.hub.drain_threadsafe()


def create_app(
    settings: Settings,
    store: Store,
    *,
    insecure_no_auth: bool = False,
    warnings: Sequence[str] = (),
) -> ASGIApp:
    """The server for ``store``. The caller owns the store (opens and closes it).
    ``warnings`` (e.g. plain HTTP on a public address) are shown by ``/healthz``."""
    ctx = ServerContext(
        settings=settings, store=store, insecure_no_auth=insecure_no_auth, warnings=list(warnings)
    )
    console = ui.Console(store)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx.hub.bind(asyncio.get_running_loop())
        tune_malloc()  # big bodies (states, diffs) go back to the OS when freed
        unsubscribe = store.listen(ctx.hub.wake_threadsafe)
        for workspace, serial in await ctx.call(store.pending_scans):
            ctx.scan_later(workspace, serial)
        try:
            yield
        finally:
            unsubscribe()
            console.close()
            ctx.close()

    app = Starlette(
        routes=_routes(),
        exception_handlers={DriftsafeError: _driftsafe_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.console = console
    return AccessLog(ui.wrap(app, console), ctx)


class JsonLogFormatter(logging.Formatter):
    """Structured logs: one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            payload.update(event)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
