"""The web console under /ui/: server-rendered pages over the same store and tokens
as the API (see docs/console.md). ``routes()`` and ``wrap()`` are what the app uses."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from driftsafe.errors import NotFound
from driftsafe.server.ui import actions, pages, session
from driftsafe.server.ui.console import Activity, Console
from driftsafe.server.ui.session import SecurityHeaders

WS = "{workspace:path}"
_STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
STATIC_DIR = Path(__file__).parent / "static"


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _STATIC:
        raise NotFound(f"no console asset {name!r}")
    return FileResponse(
        STATIC_DIR / name,
        media_type=_STATIC[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


def routes() -> list[Route]:
    return [
        Route("/ui/login", session.login_form, methods=["GET"]),
        Route("/ui/login", session.login, methods=["POST"]),
        Route("/ui/logout", session.logout_form, methods=["GET"]),
        Route("/ui/logout", session.logout, methods=["POST"]),
        Route("/ui/static/{name}", static, methods=["GET"]),
        Route("/ui/", pages.workspaces, methods=["GET"]),
        Route("/ui/audit", pages.audit, methods=["GET"]),
        Route(f"/ui/workspaces/{WS}/versions/{{serial}}/raw", actions.raw_state, methods=["GET"]),
        Route(f"/ui/workspaces/{WS}/versions/{{serial}}", pages.version, methods=["GET"]),
        Route(f"/ui/workspaces/{WS}/diff", pages.diff, methods=["GET"]),
        Route(f"/ui/workspaces/{WS}/lock", pages.lock_panel, methods=["GET"]),
        Route(f"/ui/workspaces/{WS}/unlock", actions.unlock, methods=["POST"]),
        Route(f"/ui/workspaces/{WS}/restore", actions.restore_form, methods=["GET"]),
        Route(f"/ui/workspaces/{WS}/restore", actions.restore, methods=["POST"]),
        Route(f"/ui/workspaces/{WS}", pages.workspace, methods=["GET"]),
    ]


def wrap(app: ASGIApp, console: Console) -> ASGIApp:
    """The console's middleware around the whole app: its security headers on every
    /ui/ response, and the activity the lock panel reports."""
    return SecurityHeaders(Activity(app, console))


__all__ = ["Console", "routes", "wrap"]
