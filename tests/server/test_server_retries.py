"""Retry-safe locking: Terraform's http client resends a request whose answer was lost,
so the holder's own LOCK, UNLOCK and POST sent again must succeed as the first did,
while everyone else's are refused exactly as before."""

from __future__ import annotations

import pytest
from srvhelpers import AppSrv
from test_server_api import Backend, info, serials, state


def audit(srv: AppSrv, ws: str = "app") -> list[tuple[str, str, str | None]]:
    return [(e.action, e.outcome, e.token) for e in reversed(srv.store.audit_events(ws))]


@pytest.mark.anyio
async def test_a_lock_sent_again_by_its_holder_is_acquired_and_audited_as_retry(
    app_srv: AppSrv,
) -> None:
    holder, other = Backend(app_srv, app_srv.writer), Backend(app_srv, app_srv.admin)
    first = await holder.lock("L1")
    again = await holder.lock("L1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == info("L1")
    # ?wait= too: the retry of a LOCK that was granted after waiting answers at once.
    assert (await holder.lock("L1", wait="30s")).status_code == 200
    assert audit(app_srv) == [
        ("lock", "ok", "writer"),
        ("lock", "retry", "writer"),
        ("lock", "retry", "writer"),
    ]
    # Anyone else, or the same ID with another LockInfo, is still refused with the holder.
    same_id_other_token = await other.lock("L1")
    assert same_id_other_token.status_code == 423 and same_id_other_token.json() == info("L1")
    other_who = await holder.c.request(
        "LOCK", "/v1/locks/app", json={**info("L1"), "Who": "mallory@elsewhere"}
    )
    assert other_who.status_code == 423 and other_who.json()["Who"] == "alice@laptop"
    other_created = await holder.c.request(
        "LOCK", "/v1/locks/app", json={**info("L1"), "Created": "2026-11-27T09:00:00Z"}
    )
    assert other_created.status_code == 423
    assert (await holder.lock("L2")).status_code == 423
    assert [o for a, o, _ in audit(app_srv)[3:]] == ["held"] * 4
    assert app_srv.store.get_lock("app").id == "L1"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_lockinfo_without_created_is_retry_safe_too(app_srv: AppSrv) -> None:
    holder = Backend(app_srv, app_srv.writer)
    bare = {"ID": "L1", "Who": "ci@runner", "Operation": "OperationTypePlan"}
    first = await holder.c.request("LOCK", "/v1/locks/app", json=bare)
    again = await holder.c.request("LOCK", "/v1/locks/app", json=bare)
    assert first.status_code == again.status_code == 200
    assert first.json()["Created"] == again.json()["Created"] != ""


@pytest.mark.anyio
async def test_an_unlock_sent_again_by_its_holder_answers_200(app_srv: AppSrv) -> None:
    holder, other = Backend(app_srv, app_srv.writer), Backend(app_srv, app_srv.admin)
    assert (await holder.lock("L1")).status_code == 200
    assert (await holder.unlock("L1")).status_code == 200
    again = await holder.unlock("L1")
    assert again.status_code == 200 and again.json()["ID"] == "L1"
    # Another ID, or the same ID from another token, was never released by its sender.
    assert (await holder.unlock("L9")).status_code == 404
    assert (await other.unlock("L1")).status_code == 404
    # Someone locked after the release: the retry is still 200 and leaves their lock be.
    assert (await other.lock("L2")).status_code == 200
    assert (await holder.unlock("L1")).status_code == 200
    assert app_srv.store.get_lock("app").id == "L2"  # type: ignore[union-attr]
    assert audit(app_srv) == [
        ("lock", "ok", "writer"),
        ("unlock", "ok", "writer"),
        ("unlock", "retry", "writer"),
        ("unlock", "rejected", "writer"),
        ("unlock", "rejected", "admin"),
        ("lock", "ok", "admin"),
        ("unlock", "retry", "writer"),
    ]
    # ... and after they released too: the holder's own release is still in the log.
    assert (await other.unlock("L2")).status_code == 200
    assert (await holder.unlock("L1")).status_code == 200
    assert audit(app_srv)[-1] == ("unlock", "retry", "writer")


@pytest.mark.anyio
async def test_an_unlock_after_a_force_unlock_is_not_a_retry(app_srv: AppSrv) -> None:
    holder, admin = Backend(app_srv, app_srv.writer), Backend(app_srv, app_srv.admin)
    assert (await holder.lock("L1")).status_code == 200
    assert (await admin.unlock(None)).status_code == 200
    # The holder never released it: it must learn its lock was broken.
    refused = await holder.unlock("L1")
    assert refused.status_code == 404
    assert "not locked" in refused.json()["error"]["message"]
    assert (await admin.lock("L2")).status_code == 200
    held = await holder.unlock("L1")
    assert held.status_code == 409 and held.json()["ID"] == "L2"


@pytest.mark.anyio
async def test_a_write_sent_again_answers_created_false_and_adds_nothing(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer)
    assert (await be.lock("L1")).status_code == 200
    body = state(1)
    first = await be.post(body, "L1")
    replay = await be.post(body, "L1")
    assert first.json() == {"serial": 1, "created": True}
    assert replay.status_code == 200 and replay.json() == {"serial": 1, "created": False}
    assert serials(app_srv) == [1]
    # A replay once the lock is gone is fenced like any other write.
    assert (await be.unlock("L1")).status_code == 200
    assert (await be.post(body, "L1")).status_code == 409
    writes = [(a, o) for a, o, _ in audit(app_srv) if a == "write"]
    assert writes == [("write", "ok"), ("write", "rejected")]


@pytest.mark.anyio
async def test_retries_count_in_metrics(app_srv: AppSrv) -> None:
    be = Backend(app_srv, app_srv.writer)
    for _ in range(2):
        assert (await be.lock("L1")).status_code == 200
    for _ in range(2):
        assert (await be.unlock("L1")).status_code == 200
    text = (await app_srv.client().get("/metrics")).text
    lines = {line for line in text.splitlines() if line.startswith("driftsafe_locks_total")}
    assert 'driftsafe_locks_total{outcome="retry"} 1' in lines
    assert 'driftsafe_locks_total{outcome="release_retry"} 1' in lines
