"""Console sessions: login with an API token, a server-side session behind an HttpOnly
SameSite=Strict cookie, CSRF tokens on every state-changing form, and the security
headers every /ui/ response carries."""

from __future__ import annotations

import fnmatch
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftsafe.errors import BadRequest, DriftsafeError, Forbidden, NotFound
from driftsafe.server.context import ServerContext, read_body
from driftsafe.store import Actor, TokenRecord

COOKIE = "driftsafe_session"
FORM_LIMIT = 64 * 1024

# No inline script or style, nothing from another origin, no framing, forms post home.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]


class SecurityHeaders:
    """Adds the console's headers to every response under /ui/ (errors and 404s too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (
            scope["path"] == "/ui" or scope["path"].startswith("/ui/")
        ):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/ui/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in HEADERS if h[0] not in names]
                if not static and b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass(frozen=True)
class Viewer:
    """The person behind a console session: their token and the session's CSRF token."""

    token: TokenRecord
    csrf: str
    remote: str | None

    @property
    def name(self) -> str:
        return self.token.name

    @property
    def admin(self) -> bool:
        return self.token.allows("admin")

    def sees(self, workspace: str) -> bool:
        return fnmatch.fnmatchcase(workspace, self.token.workspace)

    def can(self, scope: str, workspace: str) -> bool:
        return self.token.allows(scope, workspace)

    def actor(self, workspace: str | None = None) -> Actor:
        return Actor(self.token.name, self.remote, admin=self.token.allows("admin", workspace))


def ctx_of(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def remote_of(request: Request) -> str | None:
    return request.client.host if request.client else None


async def current_viewer(request: Request) -> Viewer | None:
    ctx = ctx_of(request)
    secret = request.cookies.get(COOKIE)
    if not secret or len(secret) > 200:
        return None
    session = await ctx.call(ctx.store.session, secret, ctx.settings.console_idle)
    if session is None or not session.token.allows("read"):
        return None
    request.state.token = session.token  # the access log names it
    return Viewer(session.token, session.csrf, remote_of(request))


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form (the console's only kind), first value of each field."""
    body = await read_body(request, FORM_LIMIT)
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form is not valid urlencoded UTF-8") from None
    return {key: values[0] for key, values in parsed.items()}


def html_error(request: Request, exc: DriftsafeError) -> Response:
    templates = request.app.state.console.templates
    page = templates.get_template("error.html").render(
        title=f"{exc.http_status} {exc.code}", error=exc, viewer=None, csrf="", nav=""
    )
    headers = {}
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return HTMLResponse(page, status_code=exc.http_status, headers=headers)


Page = Callable[[Request, Viewer], Awaitable[Response]]


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """A GET page: without a session, a redirect to the login form."""

    async def run(request: Request) -> Response:
        try:
            viewer = await current_viewer(request)
            if viewer is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)
            return await handler(request, viewer)
        except DriftsafeError as exc:
            return html_error(request, exc)

    return run


Action = Callable[[Request, Viewer, dict[str, str]], Awaitable[Response]]


def action(handler: Action) -> Callable[[Request], Awaitable[Response]]:
    """A state-changing POST: refused (403, nothing done) without a live session and
    that session's CSRF token in the form's ``csrf_token`` field."""

    async def run(request: Request) -> Response:
        try:
            viewer = await current_viewer(request)
            if viewer is None:
                raise Forbidden("no console session: log in at /ui/login first")
            fields = await form_fields(request)
            sent = fields.get("csrf_token", "")
            if not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
                ctx = ctx_of(request)
                await ctx.call(
                    ctx.store.record,
                    "console",
                    None,
                    viewer.actor(),
                    "forbidden",
                    {"reason": "missing or wrong CSRF token", "path": request.url.path},
                )
                raise Forbidden("missing or wrong CSRF token: reload the page and try again")
            return await handler(request, viewer, fields)
        except DriftsafeError as exc:
            return html_error(request, exc)

    return run


def render(request: Request, viewer: Viewer | None, template: str, **values: Any) -> HTMLResponse:
    templates = request.app.state.console.templates
    status = values.pop("status", 200)
    body = templates.get_template(template).render(
        viewer=viewer, csrf=viewer.csrf if viewer else "", **values
    )
    return HTMLResponse(body, status_code=status)


def safe_next(target: str | None) -> str:
    """Only a console path: never an absolute URL or a scheme-relative one."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return "/ui/"


async def login_form(request: Request) -> Response:
    ctx = ctx_of(request)
    if await current_viewer(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return render(
        request,
        None,
        "login.html",
        title="Log in",
        nav="",
        next=safe_next(request.query_params.get("next")),
        error=None,
        no_auth=ctx.insecure_no_auth,
    )


async def login(request: Request) -> Response:
    """POST /ui/login: the form's ``token`` checked like an API token (failures count
    towards the per-address limit and are audited); a new session on success."""
    ctx = ctx_of(request)
    remote = remote_of(request)
    try:
        fields = await form_fields(request)
        target = safe_next(fields.get("next"))
        if ctx.insecure_no_auth:
            raise BadRequest("this server runs with --insecure-no-auth: the console needs tokens")
        await ctx.check_rate(request, None)
        secret = fields.get("token", "").strip()
        token = await ctx.call(ctx.store.authenticate, secret) if secret else None
        if token is None or not token.allows("read"):
            if secret:
                ctx.limiter.failed(remote or "")
            ctx.metrics.inc("driftsafe_auth_failures_total", reason="unauthenticated")
            why = "no token given" if not secret else "unknown or revoked token"
            await ctx.call(
                ctx.store.record,
                "login",
                None,
                Actor(None, remote),
                "unauthenticated",
                {"reason": why},
            )
            return render(
                request,
                None,
                "login.html",
                title="Log in",
                nav="",
                next=target,
                error=f"Login failed: {why}.",
                no_auth=False,
                status=401,
            )
        session, _csrf = await ctx.call(
            ctx.store.create_session, token, remote, ctx.settings.console_idle
        )
    except DriftsafeError as exc:
        return html_error(request, exc)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout_form(request: Request) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return RedirectResponse("/ui/login", status_code=303)
    return render(request, viewer, "logout.html", title="Log out", nav="")


@action
async def logout(request: Request, viewer: Viewer, fields: dict[str, str]) -> Response:
    ctx = ctx_of(request)
    secret = request.cookies.get(COOKIE, "")
    await ctx.call(ctx.store.end_session, secret)
    await ctx.call(ctx.store.record, "logout", None, viewer.actor(), "ok", {})
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


def visible(viewer: Viewer, workspace: str) -> None:
    """A workspace the viewer may not see is reported exactly like one that does not
    exist (404): a token limited to team-a/* learns nothing about team-b/*."""
    if not viewer.sees(workspace):
        raise NotFound(f"no workspace {workspace!r}")
