"""The web console in-process, on SQLite and PostgreSQL: login and sessions, every page,
scopes and workspace globs, CSRF, escaping, secrets, security headers, force-unlock
and restore, and the rate limit shared with the API."""

from __future__ import annotations

import html as htmllib
import re

import httpx
import pytest
from consolehelpers import HOSTILE, assert_safe, csrf_of, lock_info, login, put
from srvhelpers import AppSrv

from driftsafe.store import Actor

pytestmark = pytest.mark.anyio

WS = "team-a/app"
PAGES = [
    "/ui/",
    "/ui/?q=app&locked=1",
    "/ui/audit",
    f"/ui/audit?workspace={WS}&action=lock",
    f"/ui/workspaces/{WS}",
    f"/ui/workspaces/{WS}?tab=resources",
    f"/ui/workspaces/{WS}?tab=resources&resource=module.app.lab_config_file.app",
    f"/ui/workspaces/{WS}?tab=drift",
    f"/ui/workspaces/{WS}?tab=audit",
    f"/ui/workspaces/{WS}/versions/1",
    f"/ui/workspaces/{WS}/versions/2?resource=module.app.lab_config_file.app",
    f"/ui/workspaces/{WS}/diff?from=1&to=2",
]


def seed(srv: AppSrv) -> str:
    """Two versions of team-a/app, one of team-b/secret, a held lock with a hostile
    Who, and a drift report. Returns the lock ID."""
    put(srv.store, WS, 1, tag="a")
    put(srv.store, WS, 2, n=2, tag="b")
    put(srv.store, "team-b/secret", 1)
    held = srv.store.acquire_lock(WS, lock_info("lock-1234"), Actor("writer", "127.0.0.1"))
    assert held is not None and held.acquired
    report = {
        "status": "drift",
        "findings": [
            {
                "address": "module.app.lab_config_file.app",
                "path": "values.max_connections",
                "kind": "changed",
                "state": "100",
                "reality": HOSTILE,
                "config": "100",
                "apply": "revert",
                "message": "apply would silently revert values.max_connections",
            }
        ],
    }
    srv.store.add_drift_report(WS, report, Actor("writer"))
    return "lock-1234"


def client(srv: AppSrv) -> httpx.AsyncClient:
    return srv.client()  # no Authorization header: the console uses its cookie


async def test_pages_redirect_to_login_without_a_session(app_srv: AppSrv) -> None:
    seed(app_srv)
    c = client(app_srv)
    for path in PAGES:
        answer = await c.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/login?next=")
    login_page = await c.get("/ui/login")
    assert login_page.status_code == 200
    assert '<input id="token" name="token" type="password"' in login_page.text
    assert (await c.get("/ui")).headers["location"] == "/ui/"


async def test_every_page_for_each_scope_escapes_and_hides_secrets(app_srv: AppSrv) -> None:
    lock_id = seed(app_srv)
    for token, admin in ((app_srv.reader, False), (app_srv.writer, False), (app_srv.admin, True)):
        c = client(app_srv)
        await login(c, token)
        for path in PAGES:
            answer = await c.get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
            assert answer.headers["content-type"].startswith("text/html")
            assert_safe(answer.text)
        page = (await c.get(f"/ui/workspaces/{WS}")).text
        assert htmllib.escape(HOSTILE) in page  # the lock's Who, shown escaped
        assert lock_id in page
        assert ('action="/ui/workspaces/team-a/app/unlock"' in page) is admin
        version = (await c.get(f"/ui/workspaces/{WS}/versions/1")).text
        assert ("Download the raw state" in version) is admin
        assert ("Restore this version" in version) is admin
        attrs = (
            await c.get(f"/ui/workspaces/{WS}/versions/1?resource=module.app.lab_config_file.app")
        ).text
        assert attrs.count("(sensitive)") >= 2  # marked, and flagged by the scan
        listing = (await c.get("/ui/")).text
        assert "team-a/app" in listing and "team-b/secret" in listing
        await c.aclose()


async def test_diff_page_shows_values_old_to_new_and_replacements(app_srv: AppSrv) -> None:
    seed(app_srv)
    c = client(app_srv)
    await login(c, app_srv.reader)
    page = (await c.get(f"/ui/workspaces/{WS}/diff?from=1&to=2")).text
    assert_safe(page)
    assert "terraform_data.r1" in page  # added
    assert "-/+" in page and "id-0-a" in page and "id-0-b" in page  # replaced, with ids
    assert "<code>a-0</code>" in page and "<code>b-0</code>" in page  # input, by meaning
    assert "input.type" not in page
    versions = (await c.get(f"/ui/workspaces/{WS}?tab=versions")).text
    assert re.search(r'class="add">\+1</span> <span class="chg">~2</span>', versions), versions


async def test_a_limited_token_never_sees_other_workspaces(app_srv: AppSrv) -> None:
    seed(app_srv)
    _, secret = app_srv.store.create_token("team-a-reader", "read", "team-a/*")
    c = client(app_srv)
    await login(c, secret)
    listing = (await c.get("/ui/")).text
    assert "team-a/app" in listing and "team-b" not in listing
    assert "1 workspace" in listing
    for path in (
        "/ui/workspaces/{}",
        "/ui/workspaces/{}/versions/1",
        "/ui/workspaces/{}/diff?from=1&to=1",
        "/ui/workspaces/{}?tab=audit",
        "/ui/audit?workspace={}",
    ):
        hidden = await c.get(path.format("team-b/secret"))
        missing = await c.get(path.format("team-b/nothing"))
        assert hidden.status_code == missing.status_code == 404, path
        # Exactly the answer a workspace that does not exist gets.
        assert hidden.text.replace("secret", "X") == missing.text.replace("nothing", "X")
    audit = (await c.get("/ui/audit")).text
    assert "team-b" not in audit


async def test_posts_need_a_session_and_its_csrf_token(app_srv: AppSrv) -> None:
    lock_id = seed(app_srv)
    anonymous = client(app_srv)
    form = {"confirm": lock_id, "csrf_token": "x"}
    assert (await anonymous.post(f"/ui/workspaces/{WS}/unlock", data=form)).status_code == 403
    c = client(app_srv)
    await login(c, app_srv.admin)
    csrf = csrf_of((await c.get(f"/ui/workspaces/{WS}")).text)
    for bad in ({"confirm": lock_id}, {"confirm": lock_id, "csrf_token": csrf + "x"}):
        assert (await c.post(f"/ui/workspaces/{WS}/unlock", data=bad)).status_code == 403
    restore = {"serial": "1", "confirm": WS}
    assert (await c.post(f"/ui/workspaces/{WS}/restore", data=restore)).status_code == 403
    assert app_srv.store.get_lock(WS) is not None  # nothing changed
    assert [v.serial for v in app_srv.store.list_versions(WS)] == [2, 1]
    # Another session's CSRF token does not work either.
    other = client(app_srv)
    await login(other, app_srv.admin)
    theirs = csrf_of((await other.get("/ui/")).text)
    assert theirs != csrf
    stolen = {"confirm": lock_id, "csrf_token": theirs}
    assert (await c.post(f"/ui/workspaces/{WS}/unlock", data=stolen)).status_code == 403
    assert app_srv.store.get_lock(WS) is not None


async def test_force_unlock_needs_admin_and_the_typed_id(app_srv: AppSrv) -> None:
    lock_id = seed(app_srv)
    writer = client(app_srv)
    await login(writer, app_srv.writer)
    csrf = csrf_of((await writer.get("/ui/")).text)
    refused = await writer.post(
        f"/ui/workspaces/{WS}/unlock", data={"csrf_token": csrf, "confirm": lock_id}
    )
    assert refused.status_code == 403 and app_srv.store.get_lock(WS) is not None
    admin = client(app_srv)
    await login(admin, app_srv.admin)
    csrf = csrf_of((await admin.get(f"/ui/workspaces/{WS}")).text)
    wrong = await admin.post(
        f"/ui/workspaces/{WS}/unlock", data={"csrf_token": csrf, "confirm": "lock-9999"}
    )
    assert wrong.status_code == 409 and app_srv.store.get_lock(WS) is not None
    done = await admin.post(
        f"/ui/workspaces/{WS}/unlock", data={"csrf_token": csrf, "confirm": lock_id}
    )
    assert done.status_code == 303 and app_srv.store.get_lock(WS) is None
    events = app_srv.store.audit_events(WS, 20)
    forced = [e for e in events if e.action == "force-unlock" and e.outcome == "ok"]
    assert forced and forced[0].token == "admin" and forced[0].detail["id"] == lock_id
    # Fencing then refuses the old holder's write.
    be = app_srv.client(basic=app_srv.writer)
    from consolehelpers import state

    fenced = await be.post(f"/v1/states/{WS}", params={"ID": lock_id}, content=state(3))
    assert fenced.status_code == 409


async def test_restore_shows_its_diff_then_needs_the_typed_name(app_srv: AppSrv) -> None:
    seed(app_srv)
    app_srv.store.release_lock(WS, "lock-1234", Actor("writer"))
    admin = client(app_srv)
    await login(admin, app_srv.admin)
    form = await admin.get(f"/ui/workspaces/{WS}/restore?serial=1")
    assert form.status_code == 200
    assert_safe(form.text)
    assert "terraform_data.r1" in form.text  # the restore removes it: the diff says so
    csrf = csrf_of(form.text)
    wrong = await admin.post(
        f"/ui/workspaces/{WS}/restore", data={"csrf_token": csrf, "serial": "1", "confirm": "x"}
    )
    assert wrong.status_code == 400 and app_srv.store.list_versions(WS)[0].serial == 2
    done = await admin.post(
        f"/ui/workspaces/{WS}/restore", data={"csrf_token": csrf, "serial": "1", "confirm": WS}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("/versions/3")
    assert app_srv.store.list_versions(WS)[0].restored_from == 1
    reader = client(app_srv)
    await login(reader, app_srv.reader)
    assert (await reader.get(f"/ui/workspaces/{WS}/restore?serial=1")).status_code == 403
    raw = await reader.get(f"/ui/workspaces/{WS}/versions/1/raw")
    assert raw.status_code == 403
    download = await admin.get(f"/ui/workspaces/{WS}/versions/1/raw")
    assert download.status_code == 200 and download.json()["serial"] == 1
    assert "attachment" in download.headers["content-disposition"]


async def test_security_headers_on_every_ui_response(app_srv: AppSrv) -> None:
    seed(app_srv)
    c = client(app_srv)
    answers = [await c.get("/ui/login"), await c.get("/ui/"), await c.get("/ui/nope")]
    await login(c, app_srv.reader)
    answers += [await c.get(p) for p in PAGES]
    answers += [await c.get("/ui/static/console.css"), await c.get("/ui/static/console.js")]
    answers.append(await c.post(f"/ui/workspaces/{WS}/unlock", data={}))
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
    page = (await c.get("/ui/")).text
    assert "<script>" not in page and " style=" not in page and "onclick" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from another origin


async def test_session_cookie_logout_and_revocation(app_srv: AppSrv) -> None:
    seed(app_srv)
    c = client(app_srv)
    answer = await login(c, app_srv.reader)
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under TLS it is set (test_console_tls)
    assert (await c.get("/ui/")).status_code == 200
    csrf = csrf_of((await c.get("/ui/logout")).text)
    assert (await c.post("/ui/logout", data={"csrf_token": csrf})).status_code == 303
    assert (await c.get("/ui/")).status_code == 303
    # A session dies with its token.
    c2 = client(app_srv)
    _, secret = app_srv.store.create_token("short-lived", "read")
    await login(c2, secret)
    assert (await c2.get("/ui/")).status_code == 200
    app_srv.store.revoke_token("short-lived")
    assert (await c2.get("/ui/")).status_code == 303
    actions = [e.action for e in app_srv.store.audit_events(None, 50)]
    assert "login" in actions and "logout" in actions


async def test_idle_sessions_expire(app_srv: AppSrv) -> None:
    c = client(app_srv)
    await login(c, app_srv.reader)
    secret = c.cookies["driftsafe_session"]
    assert app_srv.store.session(secret, 3600) is not None
    assert app_srv.store.session(secret, -1) is None  # idle longer than allowed: gone
    assert app_srv.store.session(secret, 3600) is None


async def test_failed_logins_and_api_failures_share_one_rate_limit(app_srv: AppSrv) -> None:
    ctx = app_srv.app.ctx  # type: ignore[attr-defined]  # AccessLog keeps the context
    ctx.limiter.max_failures = 3
    c = client(app_srv)
    for _ in range(2):
        bad = await c.post("/ui/login", data={"token": "dst_nope_guess"})
        assert bad.status_code == 401 and "Login failed" in bad.text
    api = app_srv.client("dst_nope_guess2")
    assert (await api.get("/api/v1/workspaces")).status_code == 401  # the third failure
    blocked = await c.post("/ui/login", data={"token": app_srv.reader})  # even a good one
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    backend = app_srv.client(basic=app_srv.writer)
    limited = await backend.get(f"/v1/states/{WS}")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    events = [e for e in app_srv.store.audit_events(None, 50) if e.outcome == "rate-limited"]
    assert len(events) == 1  # audited once per block, not once per refused request
    failed = [e for e in app_srv.store.audit_events(None, 50) if e.action == "login"]
    assert [e.outcome for e in failed] == ["unauthenticated", "unauthenticated"]


async def test_the_session_cookie_is_secure_under_tls(app_srv: AppSrv) -> None:
    import httpx as _httpx

    c = _httpx.AsyncClient(
        transport=_httpx.ASGITransport(app=app_srv.app),  # type: ignore[arg-type]
        base_url="https://driftsafe.test",
    )
    async with c:
        answer = await c.post("/ui/login", data={"token": app_srv.reader})
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]


async def test_the_lock_panel_answers_when_the_lock_changes(app_srv: AppSrv) -> None:
    import anyio

    lock_id = seed(app_srv)
    c = client(app_srv)
    await login(c, app_srv.reader)
    now = await c.get(f"/ui/workspaces/{WS}/lock")
    key = now.headers["x-lock-key"]
    assert key and lock_id in now.text
    assert_safe(now.text)
    # Terraform's Created (nanoseconds, +01:00) shown in the console's one format, UTC.
    assert "2026-12-01 08:00:00 UTC" in now.text and "123456789" not in now.text
    answers: list[httpx.Response] = []

    async def wait() -> None:
        answers.append(await c.get(f"/ui/workspaces/{WS}/lock", params={"since": key}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.sleep(0.3)
        assert answers == []  # still waiting: the lock has not changed
        await anyio.to_thread.run_sync(
            lambda: app_srv.store.release_lock(WS, lock_id, Actor("writer"))
        )
    (answer,) = answers
    assert answer.headers["x-lock-key"] == "" and "Not locked" in answer.text
    hidden = client(app_srv)
    _, secret = app_srv.store.create_token("b-only", "read", "team-b/*")
    await login(hidden, secret)
    assert (await hidden.get(f"/ui/workspaces/{WS}/lock")).status_code == 404


async def test_bad_input_is_a_page_not_a_traceback(app_srv: AppSrv) -> None:
    seed(app_srv)
    c = client(app_srv)
    await login(c, app_srv.reader)
    for path, status in (
        (f"/ui/workspaces/{WS}?tab=nope", 400),
        (f"/ui/workspaces/{WS}/versions/x", 400),
        (f"/ui/workspaces/{WS}/versions/99", 404),
        (f"/ui/workspaces/{WS}/diff?from=1", 400),
        (f"/ui/workspaces/{WS}/diff?from=1&to=99", 404),
        (f"/ui/workspaces/{WS}?tab=versions&next=abc", 400),
        ("/ui/audit?since=yesterday", 400),
        (f"/ui/workspaces/{WS}/versions/1?resource=nope", 404),
    ):
        answer = await c.get(path)
        assert answer.status_code == status, (path, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert "Traceback" not in answer.text


async def test_a_hostile_lock_id_is_escaped_and_never_a_header(app_srv: AppSrv) -> None:
    put(app_srv.store, "odd/ws", 1)
    hostile_id = "<script>alert(1)</script>\r\nSet-Cookie: x=1 ✓"
    held = app_srv.store.acquire_lock("odd/ws", lock_info(hostile_id), Actor("writer"))
    assert held is not None and held.acquired
    c = client(app_srv)
    await login(c, app_srv.admin)
    page = await c.get("/ui/workspaces/odd/ws")
    panel = await c.get("/ui/workspaces/odd/ws/lock")
    for answer in (page, panel):
        assert answer.status_code == 200
        assert "<script>alert" not in answer.text and "set-cookie" not in answer.headers
    assert len(panel.headers["x-lock-key"]) == 20
    csrf = csrf_of(page.text)
    done = await c.post(
        "/ui/workspaces/odd/ws/unlock", data={"csrf_token": csrf, "confirm": hostile_id}
    )
    assert done.status_code == 303 and app_srv.store.get_lock("odd/ws") is None
