"""The console's store reads on SQLite and PostgreSQL: keyset pages that cover a list
exactly once in both directions, workspace globs (LIKE and the fallback), filters,
version info, sessions and the typed force-unlock."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftsafe.errors import Conflict, NotFound
from driftsafe.state import parse_state
from driftsafe.store import Actor, AuditFilter, SqlStore
from driftsafe.store.crypto import Cipher, decode_key, new_key_text
from driftsafe.store.queries import glob_to_like

A = Actor("writer", "127.0.0.1")


def body(serial: int, names: list[str]) -> bytes:
    resources = [
        {"mode": "managed", "type": "t", "name": n, "instances": [{"attributes": {"id": n}}]}
        for n in names
    ]
    return json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.4",
            "serial": serial,
            "lineage": "L",
            "outputs": {},
            "resources": resources,
        }
    ).encode()


@pytest.fixture
def store(store_url: str) -> SqlStore:
    s = SqlStore(store_url, Cipher(decode_key(new_key_text(), "test")))
    s.initialize()
    yield s  # type: ignore[misc]
    s.close()


def write(store: SqlStore, ws: str, serial: int, names: list[str]) -> None:
    data = body(serial, names)
    store.write_state(ws, data, parse_state(data), A, lock_id=None, findings=[])


def walk(fetch, forward: bool = True) -> list:  # type: ignore[no-untyped-def]
    """Every row, page by page, following next (or, from the last page, prev) keys."""
    page = fetch()
    rows = list(page.rows)
    while page.next_key is not None:
        page = fetch(nxt=page.next_key)
        rows += page.rows
    if forward:
        return rows
    back = list(page.rows)
    while page.prev_key is not None:
        page = fetch(prv=page.prev_key)
        back = list(page.rows) + back
    return back


def test_versions_pages_cover_the_history_once_both_ways(store: SqlStore) -> None:
    for serial in range(1, 24):
        write(store, "ws", serial, [f"r{i}" for i in range(serial % 4)])
    forward = walk(lambda **kw: store.console_versions("ws", limit=5, **kw))
    assert [r.version.serial for r in forward] == list(range(23, 0, -1))
    backward = walk(lambda **kw: store.console_versions("ws", limit=5, **kw), forward=False)
    assert [r.version.serial for r in backward] == list(range(23, 0, -1))
    first = store.console_versions("ws", limit=5)
    assert first.total == 23 and first.prev_key is None and first.next_key == 19
    info = store.version_info("ws", 6)
    assert (info.terraform_version, info.added, info.changed, info.removed) == (
        "1.15.4",
        1,
        0,
        0,
    )  # r1 added
    assert info.previous == 5
    assert store.console_versions("ws", nxt=7, limit=1).rows[0].info == info  # kept


def test_workspace_list_globs_filters_and_pages(store: SqlStore) -> None:
    names = [f"team-a/app{i:02d}" for i in range(12)] + ["team-b/x", "team_a/odd", "teamXa/y"]
    for name in names:
        write(store, name, 1, ["r"])
    store.acquire_lock("team-a/app03", {"ID": "L1", "Who": "me"}, A)
    store.add_drift_report("team-a/app05", {"status": "drift", "findings": [{}, {}]}, A)
    store.add_drift_report("team-a/app06", {"status": "clean", "findings": []}, A)
    every = walk(lambda **kw: store.console_workspaces("*", limit=4, **kw))
    assert [r.name for r in every] == sorted(names)
    back = walk(lambda **kw: store.console_workspaces("*", limit=4, **kw), forward=False)
    assert [r.name for r in back] == sorted(names)
    # "_" and "%" in a glob are literal, not LIKE wildcards.
    assert [r.name for r in store.console_workspaces("team_a/*").rows] == ["team_a/odd"]
    assert store.console_workspaces("team-a/*").total == 12
    # A glob LIKE cannot express falls back to fnmatch, with the same answer.
    assert glob_to_like("team-[ab]/*") is None
    assert store.console_workspaces("team-[ab]/*").total == 13
    assert [r.name for r in store.console_workspaces("*", locked=True).rows] == ["team-a/app03"]
    drifted = store.console_workspaces("*", drifted=True).rows
    assert [(r.name, r.drift.findings) for r in drifted] == [("team-a/app05", 2)]
    assert store.console_workspaces("*", search="APP1").total == 2  # app10, app11
    assert store.console_workspaces("*", search="%").total == 0
    row = store.console_workspace("team-a/*", "team-a/app03")
    assert row.lock is not None and row.lock.id == "L1" and row.latest.serial == 1
    with pytest.raises(NotFound):
        store.console_workspace("team-a/*", "team-b/x")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(1, 9))
def test_any_page_size_covers_the_audit_log_once(store: SqlStore, limit: int) -> None:
    for i in range(7):
        store.record("console", f"w{i % 2}", A, "ok", {"i": i})
    expected = [e.id for e in store.audit_events(None, 10_000)]
    got = walk(lambda **kw: store.console_audit(AuditFilter(), limit=limit, **kw))
    assert [e.id for e in got] == expected
    only = walk(lambda **kw: store.console_audit(AuditFilter(glob="w1"), limit=limit, **kw))
    assert {e.workspace for e in only} == {"w1"}


def test_sessions_and_the_typed_force_unlock(store: SqlStore) -> None:
    record, secret = store.create_token("alice", "admin")
    cookie, csrf = store.create_session(record, "127.0.0.1", 3600)
    session = store.session(cookie, 3600)
    assert session is not None and session.token.name == "alice" and session.csrf == csrf
    assert store.session(cookie + "x", 3600) is None
    assert store.end_session(cookie) and store.session(cookie, 3600) is None
    store.acquire_lock("ws", {"ID": "L1", "Who": "me"}, A)
    with pytest.raises(Conflict):
        store.force_unlock("ws", "L2", Actor("alice", admin=True))
    assert store.get_lock("ws") is not None
    released = store.force_unlock("ws", "L1", Actor("alice", admin=True))
    assert released.id == "L1" and store.get_lock("ws") is None
    with pytest.raises(NotFound):
        store.force_unlock("ws", "L1", Actor("alice", admin=True))
    events = store.lock_events("ws", 0)
    assert [e.action for e in events] == ["lock", "force-unlock"]
