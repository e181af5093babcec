"""The backend protocol and JSON API over HTTP: every refusal has its status and
writes nothing; locks name their holder; the API reports versions, locks, audit.

Route tests talk to the app in-process (``app_srv``); only what happens on the wire
(a refused upload's socket, where the server may bind) uses a real port."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import time
import uuid

import anyio
import httpx
import pytest
from srvhelpers import AppSrv, lifespan

from driftsafe.server.app import create_app
from driftsafe.server.serving import start_server
from driftsafe.settings import Settings
from driftsafe.state.model import parse_state
from driftsafe.store import Actor


def state(serial: int, lineage: str = "lin-a", *, extra: dict | None = None) -> bytes:
    body = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": lineage,
        "outputs": {},
        "resources": [
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": "x",
                "provider": 'provider["terraform.io/builtin/terraform"]',
                "instances": [{"schema_version": 0, "attributes": extra or {"id": "1"}}],
            }
        ],
    }
    return json.dumps(body).encode()


def info(lock_id: str, who: str = "alice@laptop") -> dict:
    return {
        "ID": lock_id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": who,
        "Version": "1.15.5",
        "Created": "2026-11-27T08:00:00Z",
        "Path": "",
    }


def md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


class Backend:
    """The backend protocol as Terraform speaks it: HTTP Basic, password = token."""

    def __init__(self, srv: AppSrv, token: str, ws: str = "app") -> None:
        self.c = srv.client(basic=token)
        self.ws = ws

    async def lock(self, lock_id: str, **params: str) -> httpx.Response:
        return await self.c.request(
            "LOCK", f"/v1/locks/{self.ws}", json=info(lock_id), params=params
        )

    async def unlock(self, lock_id: str | None) -> httpx.Response:
        body = json.dumps(info(lock_id)).encode() if lock_id else b""
        return await self.c.request("UNLOCK", f"/v1/locks/{self.ws}", content=body)

    async def post(self, body: bytes, lock_id: str | None = None, **headers: str) -> httpx.Response:
        params = {"ID": lock_id} if lock_id else {}
        return await self.c.post(
            f"/v1/states/{self.ws}", content=body, params=params, headers=headers
        )

    async def get(self) -> httpx.Response:
        return await self.c.get(f"/v1/states/{self.ws}")


def serials(srv: AppSrv, ws: str = "app") -> list[int]:
    return [v.serial for v in srv.store.list_versions(ws)]


@pytest.mark.anyio
async def test_lock_conflict_returns_bare_holder_lockinfo(app_srv: AppSrv) -> None:
    a, b = Backend(app_srv, app_srv.writer), Backend(app_srv, app_srv.admin)
    assert (await a.get()).status_code == 204
    assert (await a.lock("L1")).status_code == 200
    held = await b.lock("L2")
    assert held.status_code == 423
    assert held.json() == info("L1")  # bare LockInfo, as Terraform unmarshals it
    other = await b.unlock("L2")
    assert other.status_code == 409 and other.json()["ID"] == "L1"
    assert (await a.unlock("L1")).status_code == 200
    assert (await b.unlock("L2")).status_code == 404  # never held: not locked
    events = [(e.action, e.outcome, e.token) for e in app_srv.store.audit_events("app")]
    assert events[-3:] == [
        ("unlock", "rejected", "admin"),
        ("lock", "held", "admin"),
        ("lock", "ok", "writer"),
    ]


@pytest.mark.anyio
async def test_force_unlock_needs_admin_and_is_audited(app_srv: AppSrv) -> None:
    writer, admin = Backend(app_srv, app_srv.writer), Backend(app_srv, app_srv.admin)
    assert (await writer.lock("L1")).status_code == 200
    refused = await writer.unlock(None)
    assert refused.status_code == 403
    assert "admin" in refused.json()["error"]["message"]
    assert app_srv.store.get_lock("app") is not None
    assert (await admin.unlock(None)).status_code == 200
    assert app_srv.store.get_lock("app") is None
    actions = [(e.action, e.outcome, e.token) for e in app_srv.store.audit_events("app")]
    assert ("force-unlock", "forbidden", "writer") in actions
    assert ("force-unlock", "ok", "admin") in actions


@pytest.mark.anyio
async def test_fencing_and_serial_rules(app_srv: AppSrv) -> None:
    be, admin = Backend(app_srv, app_srv.writer), Backend(app_srv, app_srv.admin)
    assert (await be.lock("L1")).status_code == 200
    assert (await be.post(state(1), "L1")).status_code == 200
    # Terraform retrying the very same body is not a conflict, and adds no version.
    assert (await be.post(state(1), "L1")).status_code == 200
    assert serials(app_srv) == [1]
    cases = [
        (await be.post(state(2), "OTHER"), "fenced"),  # not the current lock
        (await be.post(state(2)), "locked by"),  # no ID while locked
        (await be.post(state(1, extra={"id": "2"}), "L1"), "serial 1"),  # serial not above
        (await be.post(state(5, "lin-b"), "L1"), "lineage"),  # another lineage, not admin
    ]
    for response, words in cases:
        assert response.status_code == 409, response.text
        assert words in response.json()["error"]["message"]
    stale = (await be.post(state(1, extra={"id": "2"}), "L1")).json()["error"]["message"]
    assert "serial 1" in stale and "latest serial 1" in stale
    assert serials(app_srv) == [1]
    assert (await be.unlock("L1")).status_code == 200
    # Released (e.g. force-unlocked): the old holder's ID no longer writes.
    assert (await be.post(state(2), "L1")).status_code == 409
    # An admin may replace the lineage.
    assert (await admin.post(state(2, "lin-b"))).status_code == 200
    assert serials(app_srv) == [2, 1]
    rejected = [e for e in app_srv.store.audit_events("app") if e.outcome == "rejected"]
    assert len(rejected) >= 6


@pytest.mark.anyio
async def test_bad_inputs_write_nothing(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer)
    good = state(1)
    cases = [
        (await be.post(b"{not json"), 400),
        (await be.post(b'{"hello": 1}'), 400),
        (await be.post(json.dumps({"version": 3, "serial": 1, "lineage": "x"}).encode()), 400),
        (await be.post(good, **{"Content-MD5": md5(b"other")}), 400),
        (await be.post(good, **{"Content-MD5": "***"}), 400),
        (await be.c.post("/v1/states/a/%2E%2E/b", content=good), 400),
        (await be.c.post("/v1/states/bad name", content=good), 400),
        (await be.c.request("LOCK", "/v1/locks/app", content=b"[]"), 400),
        (await be.c.request("LOCK", "/v1/locks/app", content=b"{}"), 400),
        (
            await be.c.request("LOCK", "/v1/locks/app", json=info("x"), params={"wait": "soon"}),
            400,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) == {"code", "message", "detail"}
    assert app_srv.store.list_versions("app") == []
    assert app_srv.store.get_lock("app") is None
    assert (await be.post(good, **{"Content-MD5": md5(good)})).status_code == 200


def _raw_request(url: str, head: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head.encode())
    return sock


def test_size_limit_refuses_without_reading_everything(
    server_settings: Settings, store_url: str
) -> None:
    # A real port: the point is what crosses the socket before the 413 comes back.
    running = start_server(server_settings.with_(max_state_bytes=10_000), db=store_url)
    try:
        token = running.store.create_token("w", "write")[1]
        auth = base64.b64encode(f"tf:{token}".encode()).decode()
        head = f"POST /v1/states/big HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
        # A declared size over the limit is refused before any of the body is sent.
        with _raw_request(running.url, head + "Content-Length: 100000000\r\n\r\n") as sock:
            assert sock.recv(4096).startswith(b"HTTP/1.1 413")
        # Chunked: the server counts as it reads and answers as soon as it is over.
        with _raw_request(running.url, head + "Transfer-Encoding: chunked\r\n\r\n") as sock:
            sent = 0
            sock.setblocking(False)
            reply = b""
            while sent < 50_000_000:
                with contextlib.suppress(BlockingIOError):
                    reply = sock.recv(4096)
                if reply:
                    break
                try:
                    sock.sendall(b"1000\r\n" + b" " * 4096 + b"\r\n")
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    time.sleep(0.01)
                    continue
                sent += 4096
            assert reply.startswith(b"HTTP/1.1 413"), reply
            assert sent < 5_000_000  # socket buffers at most, never the whole 50 MB
        assert running.store.list_versions("big") == []
    finally:
        running.stop()


@pytest.mark.anyio
async def test_scopes_and_workspace_globs(app_srv: AppSrv) -> None:
    team, _ = app_srv.store.create_token("team", "write", "team/*")
    team_token = app_srv.store.create_token("team2", "write", "team/*")[1]
    revoked = app_srv.store.create_token("gone", "admin")[1]
    app_srv.store.revoke_token("gone")
    reader = Backend(app_srv, app_srv.reader, "team/app")
    assert (await reader.lock("L")).status_code == 403
    assert (await reader.post(state(1))).status_code == 403
    assert (await reader.get()).status_code == 204
    scoped = Backend(app_srv, team_token, "team/app")
    assert (await scoped.post(state(1))).status_code == 200
    outside = Backend(app_srv, team_token, "other/app")
    assert (await outside.get()).status_code == 403
    assert (await outside.lock("L")).status_code == 403
    assert (await Backend(app_srv, revoked).get()).status_code == 401
    assert (await Backend(app_srv, "dst_nope_nope").get()).status_code == 401
    no_auth = await app_srv.client().get("/v1/states/team/app")
    assert no_auth.status_code == 401 and "Basic" in no_auth.headers["www-authenticate"]
    async with app_srv.client(team_token) as c:
        assert (await c.get("/api/v1/workspaces/other/app/versions")).status_code == 403
        restore = await c.post("/api/v1/workspaces/team/app/restore", json={"serial": 1})
        assert restore.status_code == 403
        listed = (await c.get("/api/v1/workspaces")).json()["workspaces"]
        assert [w["name"] for w in listed] == ["team/app"]
    assert team.scope == "write"
    failures = [e for e in app_srv.store.audit_events() if e.action == "auth"]
    assert {e.outcome for e in failures} == {"forbidden", "unauthenticated"}


@pytest.mark.anyio
async def test_wait_hands_over_fast_and_in_order(app_srv: AppSrv) -> None:
    holder = Backend(app_srv, app_srv.writer)
    assert (await holder.lock("H")).status_code == 200
    order: list[tuple[str, int, float]] = []

    async def wait(name: str) -> None:
        be = Backend(app_srv, app_srv.writer)
        r = await be.lock(name, wait="20s")
        order.append((name, r.status_code, time.monotonic()))
        if r.status_code == 200:
            await anyio.sleep(0.2)
            await be.unlock(name)

    async with anyio.create_task_group() as waiters:
        for name in ("W1", "W2", "W3"):
            waiters.start_soon(wait, name)
            await anyio.sleep(0.3)  # a known arrival order
        released = time.monotonic()
        assert (await holder.unlock("H")).status_code == 200
    assert [name for name, _, _ in order] == ["W1", "W2", "W3"]
    assert all(status == 200 for _, status, _ in order)
    assert order[0][2] - released < 0.3


@pytest.mark.anyio
async def test_wait_times_out_with_holder_info(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer)
    assert (await be.lock("H")).status_code == 200
    started = time.monotonic()
    r = await Backend(app_srv, app_srv.writer).lock("W", wait="1s")
    assert r.status_code == 423 and r.json()["ID"] == "H"
    assert 0.9 < time.monotonic() - started < 3


@pytest.mark.anyio
async def test_json_api(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer, "team/app")
    assert (await be.lock("L1")).status_code == 200
    assert (await be.post(state(1), "L1")).status_code == 200
    secret = {"id": "2", "password": "hunter2-is-not-a-good-password"}
    assert (await be.post(state(2, extra=secret), "L1")).status_code == 200
    async with app_srv.client(app_srv.reader) as c:
        lock = (await c.get("/api/v1/workspaces/team/app/lock")).json()
        assert lock["locked"] and lock["lock"]["who"] == "alice@laptop"
        assert lock["lock"]["token"] == "writer" and lock["lock"]["stale"] is False
        aged = await c.get("/api/v1/workspaces/team/app/lock", params={"max_age": 0})
        assert aged.json()["lock"]["stale"]
        listed = (await c.get("/api/v1/workspaces")).json()["workspaces"]
        assert listed == [
            {
                "name": "team/app",
                "latest_serial": 2,
                "versions": 2,
                "locked": True,
                "updated_at": listed[0]["updated_at"],
            }
        ]
        vs = (await c.get("/api/v1/workspaces/team/app/versions")).json()["versions"]
        assert [v["serial"] for v in vs] == [2, 1]
        assert vs[0]["findings"] and vs[1]["findings"] == []
        assert "hunter2" not in json.dumps(vs)
        one = (await c.get("/api/v1/workspaces/team/app/versions/1")).json()
        assert one["state"]["serial"] == 1 and one["version"]["writer"]["token"] == "writer"
        assert (await c.get("/api/v1/workspaces/team/app/versions/9")).status_code == 404
        diff = await c.get("/api/v1/workspaces/team/app/diff", params={"from": 1, "to": 2})
        # The original fields, and the value-level ones of the diff by meaning.
        assert set(diff.json()) == {
            "added",
            "removed",
            "changed",
            "replaced",
            "resources",
            "outputs",
            "summary",
        }
        assert "hunter2" not in diff.text  # values are there, secrets are not
        half = await c.get("/api/v1/workspaces/team/app/diff", params={"from": 1})
        assert half.status_code == 400
        assert (await c.get("/api/v1/workspaces/team/app/restore")).status_code == 405
        restore = await c.post("/api/v1/workspaces/team/app/restore", json={"serial": 1})
        assert restore.status_code == 403
        young = await c.delete("/api/v1/workspaces/team/app/lock")
        assert young.status_code == 403
    async with app_srv.client(app_srv.admin) as c:
        # Restore is refused while a run holds the lock.
        held = await c.post("/api/v1/workspaces/team/app/restore", json={"serial": 1})
        assert held.status_code == 409
        fresh = await c.delete(
            "/api/v1/workspaces/team/app/lock", params={"if_stale": "true", "max_age": 3600}
        )
        assert fresh.status_code == 409 and app_srv.store.get_lock("team/app") is not None
        gone = await c.delete(
            "/api/v1/workspaces/team/app/lock", params={"if_stale": "true", "max_age": 0}
        )
        assert gone.status_code == 200 and gone.json()["released"]["id"] == "L1"
        assert (await c.delete("/api/v1/workspaces/team/app/lock")).status_code == 404
        restored = await c.post("/api/v1/workspaces/team/app/restore", json={"serial": 1})
        assert restored.status_code == 201
        assert restored.json()["version"]["serial"] == 3
        assert restored.json()["version"]["restored_from"] == 1
        as_text = await c.post("/api/v1/workspaces/team/app/restore", json={"serial": "1"})
        assert as_text.status_code == 400
        now = (await c.get("/v1/states/team/app")).content
        assert json.loads(now)["serial"] == 3 and json.loads(now)["resources"][0]["instances"][0][
            "attributes"
        ] == {"id": "1"}
        audit = await c.get("/api/v1/audit", params={"workspace": "team/app", "limit": 50})
        actions = [e["action"] for e in audit.json()["events"]]
        assert actions[0] == "restore" and "force-unlock" in actions and "write" in actions
        report = {"summary": {"drifted": 1}, "resources": []}
        created = await c.post("/api/v1/workspaces/team/app/drift", json=report)
        assert created.status_code == 201 and created.json()["id"]
        got = (await c.get("/api/v1/workspaces/team/app/drift")).json()
        assert got["reports"][0]["report"] == report
        assert (await c.post("/api/v1/workspaces/team/app/drift", json=[1])).status_code == 400
    anonymous = app_srv.client()
    health = (await anonymous.get("/healthz")).json()
    assert health["status"] == "ok"
    metrics = (await anonymous.get("/metrics")).text
    assert "driftsafe_state_writes_total" in metrics
    assert 'driftsafe_locks_total{outcome="acquired"}' in metrics
    assert "driftsafe_lock_hold_seconds_count" in metrics


def test_insecure_no_auth_only_on_loopback(server_settings: Settings, tmp_path) -> None:
    # A real port: the point is where start_server lets the server bind.
    from driftsafe.errors import ConfigError

    with pytest.raises(ConfigError, match="loopback"):
        start_server(
            server_settings, db=f"sqlite:///{tmp_path}/x.db", host="0.0.0.0", insecure_no_auth=True
        )
    running = start_server(server_settings, db=f"sqlite:///{tmp_path}/y.db", insecure_no_auth=True)
    try:
        ws = f"anon-{uuid.uuid4().hex[:4]}"
        r = httpx.post(f"{running.url}/v1/states/{ws}", content=state(1))
        assert r.status_code == 200
        assert running.store.list_versions(ws)[0].writer_token == "anonymous"
    finally:
        running.stop()


@pytest.mark.slow
@pytest.mark.anyio
async def test_large_state_is_answered_first_and_scanned_in_background(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer)
    filler = "line of rendered configuration\n" * 160_000  # ~5 MiB: over the inline limit
    data = state(1, extra={"id": "1", "input": filler, "password": "hunter2-not-a-good-one"})
    started = time.monotonic()
    assert (await be.post(data)).status_code == 200
    answered = time.monotonic() - started
    got = await be.get()  # streamed in slices, still one Content-Length body with its MD5
    assert got.content == data
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["content-md5"] == md5(data)
    version = app_srv.store.list_versions("app")[0]
    assert version.size == len(data)
    deadline = time.monotonic() + 90
    while version.scan_pending and time.monotonic() < deadline:
        await anyio.sleep(0.2)
        version = app_srv.store.list_versions("app")[0]
    assert not version.scan_pending
    assert any(f["path"].endswith("password") for f in version.findings)
    assert "hunter2" not in json.dumps(version.to_json())
    assert answered < 30


@pytest.mark.anyio
async def test_lock_refusals_check_the_token_before_the_body(app_srv: AppSrv) -> None:
    # LOCK/UNLOCK read their (small) body before the token check; an auth failure
    # must still win over a bad or oversized body, and be audited.
    big = b"x" * (64 * 1024 + 1)
    nobody = app_srv.client()
    assert (await nobody.request("LOCK", "/v1/locks/app", content=big)).status_code == 401
    assert (await nobody.request("UNLOCK", "/v1/locks/app", content=b"{bad")).status_code == 401
    reader = Backend(app_srv, app_srv.reader)
    assert (await reader.c.request("LOCK", "/v1/locks/app", content=big)).status_code == 403
    assert (await reader.unlock(None)).status_code == 403
    writer = Backend(app_srv, app_srv.admin)
    assert (await writer.c.request("LOCK", "/v1/locks/app", content=big)).status_code == 413
    assert (await writer.c.request("LOCK", "/v1/locks/app", content=b"{bad")).status_code == 400
    assert (await writer.lock("L", wait="soon")).status_code == 400
    assert app_srv.store.get_lock("app") is None
    failures = [e for e in app_srv.store.audit_events() if e.action == "auth"]
    assert [e.outcome for e in failures].count("unauthenticated") == 2
    assert [e.outcome for e in failures].count("forbidden") == 2


@pytest.mark.anyio
async def test_release_wakes_a_waiter_between_its_polls(app_srv: AppSrv) -> None:
    # The lifespan binds the wake-up hub: a waiter gets the lock as soon as it is
    # released, not at its next poll (every WAIT_POLL = 1 s).
    holder = Backend(app_srv, app_srv.writer)
    assert (await holder.lock("H")).status_code == 200
    got: dict[str, float] = {}

    async def wait() -> None:
        r = await Backend(app_srv, app_srv.writer).lock("W", wait="20s")
        assert r.status_code == 200
        got["at"] = time.monotonic()

    async with anyio.create_task_group() as waiters:
        waiters.start_soon(wait)
        await anyio.sleep(1.5)  # half-way between the waiter's polls
        released = time.monotonic()
        assert (await holder.unlock("H")).status_code == 200
    assert got["at"] - released < 0.3


@pytest.mark.anyio
async def test_scan_left_pending_is_redone_at_start(
    app_srv: AppSrv, server_settings: Settings
) -> None:
    # A server stopped before a background scan finished leaves the version marked
    # pending; the next server's lifespan starts the scan again.
    data = state(1, extra={"id": "1", "password": "hunter2-is-not-a-good-password"})
    app_srv.store.write_state(
        "crashed", data, parse_state(data), Actor("writer"), lock_id=None, findings=None
    )
    assert app_srv.store.list_versions("crashed")[0].scan_pending
    async with lifespan(create_app(server_settings, app_srv.store)):
        deadline = time.monotonic() + 60
        version = app_srv.store.list_versions("crashed")[0]
        while version.scan_pending and time.monotonic() < deadline:
            await anyio.sleep(0.1)
            version = app_srv.store.list_versions("crashed")[0]
    assert not version.scan_pending
    assert any(f["path"].endswith("password") for f in version.findings)
