"""The backend protocol and JSON API over HTTP: every refusal has its status and
writes nothing; locks name their holder; the API reports versions, locks, audit."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from srvhelpers import Srv

from driftsafe.server.serving import start_server
from driftsafe.settings import Settings


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


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class Backend:
    def __init__(self, srv: Srv, token: str, ws: str = "app") -> None:
        self.c = httpx.Client(base_url=srv.url, auth=("tf", token), timeout=30)
        _OPEN.append(self.c)
        self.ws = ws

    def lock(self, lock_id: str, **params: str) -> httpx.Response:
        return self.c.request("LOCK", f"/v1/locks/{self.ws}", json=info(lock_id), params=params)

    def unlock(self, lock_id: str | None) -> httpx.Response:
        body = json.dumps(info(lock_id)).encode() if lock_id else b""
        return self.c.request("UNLOCK", f"/v1/locks/{self.ws}", content=body)

    def post(self, body: bytes, lock_id: str | None = None, **headers: str) -> httpx.Response:
        params = {"ID": lock_id} if lock_id else {}
        return self.c.post(f"/v1/states/{self.ws}", content=body, params=params, headers=headers)

    def get(self) -> httpx.Response:
        return self.c.get(f"/v1/states/{self.ws}")


def serials(srv: Srv, ws: str = "app") -> list[int]:
    return [v.serial for v in srv.store.list_versions(ws)]


def test_lock_conflict_returns_bare_holder_lockinfo(srv: Srv) -> None:
    a, b = Backend(srv, srv.writer), Backend(srv, srv.admin)
    assert a.get().status_code == 204
    assert a.lock("L1").status_code == 200
    held = b.lock("L2")
    assert held.status_code == 423
    assert held.json() == info("L1")  # bare LockInfo, as Terraform unmarshals it
    other = b.unlock("L2")
    assert other.status_code == 409 and other.json()["ID"] == "L1"
    assert a.unlock("L1").status_code == 200
    assert a.unlock("L1").status_code == 404
    events = [(e.action, e.outcome, e.token) for e in srv.store.audit_events("app")]
    assert events[-3:] == [
        ("unlock", "rejected", "admin"),
        ("lock", "held", "admin"),
        ("lock", "ok", "writer"),
    ]


def test_force_unlock_needs_admin_and_is_audited(srv: Srv) -> None:
    writer, admin = Backend(srv, srv.writer), Backend(srv, srv.admin)
    assert writer.lock("L1").status_code == 200
    refused = writer.unlock(None)
    assert refused.status_code == 403
    assert "admin" in refused.json()["error"]["message"]
    assert srv.store.get_lock("app") is not None
    assert admin.unlock(None).status_code == 200
    assert srv.store.get_lock("app") is None
    actions = [(e.action, e.outcome, e.token) for e in srv.store.audit_events("app")]
    assert ("force-unlock", "forbidden", "writer") in actions
    assert ("force-unlock", "ok", "admin") in actions


def test_fencing_and_serial_rules(srv: Srv) -> None:
    be, admin = Backend(srv, srv.writer), Backend(srv, srv.admin)
    assert be.lock("L1").status_code == 200
    assert be.post(state(1), "L1").status_code == 200
    # Terraform retrying the very same body is not a conflict, and adds no version.
    assert be.post(state(1), "L1").status_code == 200
    assert serials(srv) == [1]
    cases = [
        (be.post(state(2), "OTHER"), "fenced"),  # not the current lock
        (be.post(state(2)), "locked by"),  # no ID while locked
        (be.post(state(1, extra={"id": "2"}), "L1"), "serial 1"),  # serial not above
        (be.post(state(5, "lin-b"), "L1"), "lineage"),  # another lineage, not admin
    ]
    for response, words in cases:
        assert response.status_code == 409, response.text
        assert words in response.json()["error"]["message"]
    stale = be.post(state(1, extra={"id": "2"}), "L1").json()["error"]["message"]
    assert "serial 1" in stale and "latest serial 1" in stale
    assert serials(srv) == [1]
    assert be.unlock("L1").status_code == 200
    # Released (e.g. force-unlocked): the old holder's ID no longer writes.
    assert be.post(state(2), "L1").status_code == 409
    assert admin.post(state(2, "lin-b")).status_code == 200  # admin may replace lineage
    assert serials(srv) == [2, 1]
    rejected = [e for e in srv.store.audit_events("app") if e.outcome == "rejected"]
    assert len(rejected) >= 6


def test_bad_inputs_write_nothing(srv: Srv, server_settings: Settings) -> None:
    be = Backend(srv, srv.writer)
    good = state(1)
    cases = [
        (be.post(b"{not json"), 400),
        (be.post(b'{"hello": 1}'), 400),
        (be.post(json.dumps({"version": 3, "serial": 1, "lineage": "x"}).encode()), 400),
        (be.post(good, **{"Content-MD5": md5(b"other")}), 400),
        (be.post(good, **{"Content-MD5": "***"}), 400),
        (be.c.post("/v1/states/a/%2E%2E/b", content=good), 400),
        (be.c.post("/v1/states/bad name", content=good), 400),
        (be.c.request("LOCK", "/v1/locks/app", content=b"[]"), 400),
        (be.c.request("LOCK", "/v1/locks/app", content=b"{}"), 400),
        (be.c.request("LOCK", "/v1/locks/app", json=info("x"), params={"wait": "soon"}), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) == {"code", "message", "detail"}
    assert srv.store.list_versions("app") == []
    assert srv.store.get_lock("app") is None
    assert be.post(good, **{"Content-MD5": md5(good)}).status_code == 200


def _raw_request(url: str, head: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head.encode())
    return sock


def test_size_limit_refuses_without_reading_everything(
    server_settings: Settings, store_url: str
) -> None:
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


def test_scopes_and_workspace_globs(srv: Srv) -> None:
    team, _ = srv.store.create_token("team", "write", "team/*")
    team_token = srv.store.create_token("team2", "write", "team/*")[1]
    revoked = srv.store.create_token("gone", "admin")[1]
    srv.store.revoke_token("gone")
    reader = Backend(srv, srv.reader, "team/app")
    assert reader.lock("L").status_code == 403
    assert reader.post(state(1)).status_code == 403
    assert reader.get().status_code == 204
    scoped = Backend(srv, team_token, "team/app")
    assert scoped.post(state(1)).status_code == 200
    outside = Backend(srv, team_token, "other/app")
    assert outside.get().status_code == 403
    assert outside.lock("L").status_code == 403
    assert Backend(srv, revoked).get().status_code == 401
    assert Backend(srv, "dst_nope_nope").get().status_code == 401
    no_auth = httpx.get(f"{srv.url}/v1/states/team/app")
    assert no_auth.status_code == 401 and "Basic" in no_auth.headers["www-authenticate"]
    with srv.client(team_token) as c:
        assert c.get("/api/v1/workspaces/other/app/versions").status_code == 403
        assert c.post("/api/v1/workspaces/team/app/restore", json={"serial": 1}).status_code == 403
        listed = c.get("/api/v1/workspaces").json()["workspaces"]
        assert [w["name"] for w in listed] == ["team/app"]
    assert team.scope == "write"
    failures = [e for e in srv.store.audit_events() if e.action == "auth"]
    assert {e.outcome for e in failures} == {"forbidden", "unauthenticated"}


def test_wait_hands_over_fast_and_in_order(srv: Srv) -> None:
    holder = Backend(srv, srv.writer)
    assert holder.lock("H").status_code == 200
    order: list[tuple[str, int, float]] = []

    def wait(name: str) -> None:
        be = Backend(srv, srv.writer)
        r = be.lock(name, wait="20s")
        order.append((name, r.status_code, time.monotonic()))
        if r.status_code == 200:
            time.sleep(0.2)
            be.unlock(name)

    threads = []
    for name in ("W1", "W2", "W3"):
        t = threading.Thread(target=wait, args=(name,))
        t.start()
        threads.append(t)
        time.sleep(0.3)  # a known arrival order
    released = time.monotonic()
    assert holder.unlock("H").status_code == 200
    for t in threads:
        t.join()
    assert [name for name, _, _ in order] == ["W1", "W2", "W3"]
    assert all(status == 200 for _, status, _ in order)
    assert order[0][2] - released < 0.3


def test_wait_times_out_with_holder_info(srv: Srv) -> None:
    be = Backend(srv, srv.writer)
    assert be.lock("H").status_code == 200
    started = time.monotonic()
    r = Backend(srv, srv.writer).lock("W", wait="1s")
    assert r.status_code == 423 and r.json()["ID"] == "H"
    assert 0.9 < time.monotonic() - started < 3


def test_json_api(srv: Srv) -> None:
    be = Backend(srv, srv.writer, "team/app")
    assert be.lock("L1").status_code == 200
    assert be.post(state(1), "L1").status_code == 200
    secret = {"id": "2", "password": "hunter2-is-not-a-good-password"}
    assert be.post(state(2, extra=secret), "L1").status_code == 200
    with srv.client(srv.reader) as c:
        lock = c.get("/api/v1/workspaces/team/app/lock").json()
        assert lock["locked"] and lock["lock"]["who"] == "alice@laptop"
        assert lock["lock"]["token"] == "writer" and lock["lock"]["stale"] is False
        assert c.get("/api/v1/workspaces/team/app/lock", params={"max_age": 0}).json()["lock"][
            "stale"
        ]
        listed = c.get("/api/v1/workspaces").json()["workspaces"]
        assert listed == [
            {
                "name": "team/app",
                "latest_serial": 2,
                "versions": 2,
                "locked": True,
                "updated_at": listed[0]["updated_at"],
            }
        ]
        vs = c.get("/api/v1/workspaces/team/app/versions").json()["versions"]
        assert [v["serial"] for v in vs] == [2, 1]
        assert vs[0]["findings"] and vs[1]["findings"] == []
        assert "hunter2" not in json.dumps(vs)
        one = c.get("/api/v1/workspaces/team/app/versions/1").json()
        assert one["state"]["serial"] == 1 and one["version"]["writer"]["token"] == "writer"
        assert c.get("/api/v1/workspaces/team/app/versions/9").status_code == 404
        diff = c.get("/api/v1/workspaces/team/app/diff", params={"from": 1, "to": 2}).json()
        assert set(diff) == {"added", "removed", "changed"}
        assert c.get("/api/v1/workspaces/team/app/diff", params={"from": 1}).status_code == 400
        assert c.get("/api/v1/workspaces/team/app/restore").status_code == 405
        assert c.post("/api/v1/workspaces/team/app/restore", json={"serial": 1}).status_code == 403
        young = c.delete("/api/v1/workspaces/team/app/lock")
        assert young.status_code == 403
    with srv.client(srv.admin) as c:
        # Restore is refused while a run holds the lock.
        assert c.post("/api/v1/workspaces/team/app/restore", json={"serial": 1}).status_code == 409
        fresh = c.delete(
            "/api/v1/workspaces/team/app/lock", params={"if_stale": "true", "max_age": 3600}
        )
        assert fresh.status_code == 409 and srv.store.get_lock("team/app") is not None
        gone = c.delete(
            "/api/v1/workspaces/team/app/lock", params={"if_stale": "true", "max_age": 0}
        )
        assert gone.status_code == 200 and gone.json()["released"]["id"] == "L1"
        assert c.delete("/api/v1/workspaces/team/app/lock").status_code == 404
        restored = c.post("/api/v1/workspaces/team/app/restore", json={"serial": 1})
        assert restored.status_code == 201
        assert restored.json()["version"]["serial"] == 3
        assert restored.json()["version"]["restored_from"] == 1
        assert (
            c.post("/api/v1/workspaces/team/app/restore", json={"serial": "1"}).status_code == 400
        )
        now = c.get("/v1/states/team/app").content
        assert json.loads(now)["serial"] == 3 and json.loads(now)["resources"][0]["instances"][0][
            "attributes"
        ] == {"id": "1"}
        events = c.get("/api/v1/audit", params={"workspace": "team/app", "limit": 50}).json()
        actions = [e["action"] for e in events["events"]]
        assert actions[0] == "restore" and "force-unlock" in actions and "write" in actions
        report = {"summary": {"drifted": 1}, "resources": []}
        created = c.post("/api/v1/workspaces/team/app/drift", json=report)
        assert created.status_code == 201 and created.json()["id"]
        got = c.get("/api/v1/workspaces/team/app/drift").json()
        assert got["reports"][0]["report"] == report
        assert c.post("/api/v1/workspaces/team/app/drift", json=[1]).status_code == 400
    health = httpx.get(f"{srv.url}/healthz").json()
    assert health["status"] == "ok"
    metrics = httpx.get(f"{srv.url}/metrics").text
    assert "driftsafe_state_writes_total" in metrics
    assert 'driftsafe_locks_total{outcome="acquired"}' in metrics
    assert "driftsafe_lock_hold_seconds_count" in metrics


def test_insecure_no_auth_only_on_loopback(server_settings: Settings, tmp_path) -> None:
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
def test_large_state_is_answered_first_and_scanned_in_background(srv: Srv) -> None:
    be = Backend(srv, srv.writer)
    filler = "line of rendered configuration\n" * 160_000  # ~5 MiB: over the inline limit
    data = state(1, extra={"id": "1", "input": filler, "password": "hunter2-not-a-good-one"})
    started = time.monotonic()
    assert be.post(data).status_code == 200
    answered = time.monotonic() - started
    got = be.get()  # streamed in slices, still one Content-Length body with its MD5
    assert got.content == data
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["content-md5"] == md5(data)
    version = srv.store.list_versions("app")[0]
    assert version.size == len(data)
    deadline = time.monotonic() + 90
    while version.scan_pending and time.monotonic() < deadline:
        time.sleep(0.2)
        version = srv.store.list_versions("app")[0]
    assert not version.scan_pending
    assert any(f["path"].endswith("password") for f in version.findings)
    assert "hunter2" not in json.dumps(version.to_json())
    assert answered < 30


def test_lock_refusals_check_the_token_before_the_body(srv: Srv) -> None:
    # LOCK/UNLOCK read their (small) body before the token check; an auth failure
    # must still win over a bad or oversized body, and be audited.
    big = b"x" * (64 * 1024 + 1)
    nobody = httpx.Client(base_url=srv.url, timeout=30)
    _OPEN.append(nobody)
    assert nobody.request("LOCK", "/v1/locks/app", content=big).status_code == 401
    assert nobody.request("UNLOCK", "/v1/locks/app", content=b"{bad").status_code == 401
    reader = Backend(srv, srv.reader)
    assert reader.c.request("LOCK", "/v1/locks/app", content=big).status_code == 403
    assert reader.unlock(None).status_code == 403
    writer = Backend(srv, srv.admin)
    assert writer.c.request("LOCK", "/v1/locks/app", content=big).status_code == 413
    assert writer.c.request("LOCK", "/v1/locks/app", content=b"{bad").status_code == 400
    assert writer.lock("L", wait="soon").status_code == 400
    assert srv.store.get_lock("app") is None
    failures = [e for e in srv.store.audit_events() if e.action == "auth"]
    assert [e.outcome for e in failures].count("unauthenticated") == 2
    assert [e.outcome for e in failures].count("forbidden") == 2
