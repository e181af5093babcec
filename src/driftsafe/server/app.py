"""The ASGI application: routes, error rendering, request logs and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftsafe import __version__
from driftsafe.errors import DriftsafeError, StoreError
from driftsafe.server import api, backend
from driftsafe.server.context import ServerContext
from driftsafe.settings import Settings
from driftsafe.store import Store

log = logging.getLogger("driftsafe.server")

WS = "{workspace:path}"


async def healthz(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    try:
        await ctx.call(ctx.store.ping)
    except StoreError as exc:
        return JSONResponse({"status": "unavailable", "error": exc.message}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__, "database": ctx.store.database})


async def metrics(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    return PlainTextResponse(ctx.metrics.render(), media_type="text/plain; version=0.0.4")


def _routes() -> list[Route]:
    return [
        Route(f"/v1/states/{WS}", backend.get_state, methods=["GET"]),
        Route(f"/v1/states/{WS}", backend.post_state, methods=["POST"]),
        Route(f"/v1/locks/{WS}", backend.lock, methods=["LOCK", "POST"]),
        Route(f"/v1/locks/{WS}", backend.unlock, methods=["UNLOCK", "DELETE"]),
        Route("/api/v1/server", api.server_info, methods=["GET"]),
        Route("/api/v1/workspaces", api.workspaces, methods=["GET"]),
        Route(f"/api/v1/workspaces/{WS}/versions/{{serial}}", api.version, methods=["GET"]),
        Route(f"/api/v1/workspaces/{WS}/versions", api.versions, methods=["GET"]),
        Route(f"/api/v1/workspaces/{WS}/diff", api.diff, methods=["GET"]),
        Route(f"/api/v1/workspaces/{WS}/restore", api.restore, methods=["POST"]),
        Route(f"/api/v1/workspaces/{WS}/lock", api.lock_status, methods=["GET"]),
        Route(f"/api/v1/workspaces/{WS}/lock", api.lock_release, methods=["DELETE"]),
        Route(f"/api/v1/workspaces/{WS}/drift", api.drift_get, methods=["GET"]),
        Route(f"/api/v1/workspaces/{WS}/drift", api.drift_post, methods=["POST"]),
        # After the routes above: {workspace:path} would also match ".../lock".
        Route(f"/api/v1/workspaces/{WS}", api.delete_workspace, methods=["DELETE"]),
        Route("/api/v1/audit", api.audit, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


async def _driftsafe_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DriftsafeError)
    headers = {"WWW-Authenticate": 'Basic realm="driftsafe"'} if exc.http_status == 401 else None
    return JSONResponse(exc.to_json(), status_code=exc.http_status, headers=headers)


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
    return path if path in ("/healthz", "/metrics", "/api/v1/workspaces") else "other"


def create_app(settings: Settings, store: Store, *, insecure_no_auth: bool = False) -> ASGIApp:
    """The server for ``store``. The caller owns the store (opens and closes it)."""
    ctx = ServerContext(settings=settings, store=store, insecure_no_auth=insecure_no_auth)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx.hub.bind(asyncio.get_running_loop())
        unsubscribe = store.listen(ctx.hub.wake_threadsafe)
        for workspace, serial in await ctx.call(store.pending_scans):
            ctx.scan_later(workspace, serial)
        try:
            yield
        finally:
            unsubscribe()
            ctx.close()

    app = Starlette(
        routes=_routes(),
        exception_handlers={DriftsafeError: _driftsafe_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return AccessLog(app, ctx)


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
