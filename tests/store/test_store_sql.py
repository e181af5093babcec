"""The SQL store on SQLite and PostgreSQL: migrations, encryption, tokens, retention,
lock and write rules (Hypothesis against a model), and crash safety."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from legacy_store import write_legacy_versions

from driftsafe.errors import BadRequest, Conflict, NotFound, StoreError
from driftsafe.settings import Settings
from driftsafe.state.model import parse_state
from driftsafe.store import Actor, SqlStore, open_store, schema
from driftsafe.store.crypto import Cipher, decode_key, new_key_text
from driftsafe.store.rotate import rotate_key

WRITER = Actor("writer", "127.0.0.1")
ADMIN = Actor("admin", "127.0.0.1", admin=True)


def body(serial: int, lineage: str = "L", marker: str = "m") -> bytes:
    return json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": serial,
            "lineage": lineage,
            "outputs": {"marker": {"value": marker, "type": "string"}},
            "resources": [],
        }
    ).encode()


def write(store: SqlStore, ws: str, data: bytes, actor: Actor = WRITER, lock_id: str | None = None):
    return store.write_state(ws, data, parse_state(data), actor, lock_id=lock_id, findings=[])


def new_store(url: str, key: str | None = None, **kw: int) -> SqlStore:
    store = SqlStore(url, Cipher(decode_key(key or new_key_text(), "test")), **kw)
    store.initialize()
    return store


def test_migrations_upgrade_in_place(store_url: str) -> None:
    key = new_key_text()
    old = SqlStore(store_url, Cipher(decode_key(key, "t")))
    try:
        assert old.initialize(target=1) == [1]
        assert old.schema_version() == 1
        old.create_token("t", "write")
    finally:
        old.close()
    write_legacy_versions(store_url, key, "ws", [body(1)])  # as schema 1 stored it
    store = SqlStore(store_url, Cipher(decode_key(key, "t")))
    try:
        assert store.initialize() == [n for n, _ in schema.MIGRATIONS if n > 1]
        assert store.initialize() == []
        assert store.schema_version() == schema.LATEST
        assert [t.name for t in store.list_tokens()] == ["t"]
        assert [v.serial for v in store.list_versions("ws")] == [1]
        assert store.get_version("ws", 1)[1] == body(1)
        store.add_drift_report("ws", {"ok": True}, WRITER)  # a table of schema 2
        with store.pool.begin() as conn:
            conn.execute(sa.text("INSERT INTO ds_schema_version VALUES (99, 0)"))
    finally:
        store.close()
    newer = SqlStore(store_url, Cipher(decode_key(key, "t")))
    try:
        with pytest.raises(StoreError, match="newer than this driftsafe"):
            newer.initialize()
    finally:
        newer.close()


def test_state_is_encrypted_at_rest_and_key_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'enc.db'}"
    key = new_key_text()
    store = new_store(url, key)
    marker = uuid.uuid4().hex
    write(store, "ws", body(1, marker=marker))
    assert marker in store.latest_state("ws")[1].decode()  # type: ignore[index]
    store.close()
    for path in tmp_path.iterdir():
        assert marker.encode() not in path.read_bytes(), path
    with pytest.raises(StoreError, match="key"):
        new_store(url)  # another key cannot open it


def test_key_file_is_created_0600_and_announced(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", db=f"sqlite:///{tmp_path}/data/ds.db")
    notices: list[str] = []
    store = open_store(settings, notices=notices)
    store.close()
    key_file = tmp_path / "data" / "driftsafe.key"
    assert notices and str(key_file) in notices[0]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again: list[str] = []
    open_store(settings, notices=again).close()
    assert again == []


def test_rotate_key_reencrypts_everything(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, db=f"sqlite:///{tmp_path}/ds.db")
    store = open_store(settings)
    for serial in (1, 2, 3):
        write(store, "ws", body(serial, marker=f"m{serial}"))
    store.close()
    old_key = (tmp_path / "driftsafe.key").read_text()
    result = rotate_key(settings)
    assert result.versions == 3
    assert (tmp_path / "driftsafe.key.old").read_text() == old_key
    assert (tmp_path / "driftsafe.key").read_text() != old_key
    store = open_store(settings, create_key=False)
    try:
        assert [json.loads(store.get_version("ws", s)[1])["serial"] for s in (1, 2, 3)] == [1, 2, 3]
    finally:
        store.close()
    with pytest.raises(StoreError):
        open_store(settings.with_(encryption_key=old_key.strip()))


def test_tokens_are_hashed_scoped_and_revocable(store_url: str) -> None:
    store = new_store(store_url)
    try:
        record, secret = store.create_token("ci", "write", "team/*")
        with pytest.raises(Conflict):
            store.create_token("ci", "read")
        with pytest.raises(BadRequest):
            store.create_token("x", "root")
        with store.pool.connect() as conn:
            dump = json.dumps([list(r) for r in conn.execute(sa.text("SELECT * FROM ds_tokens"))])
        assert secret not in dump and secret.split("_")[-1] not in dump
        found = store.authenticate(secret)
        assert found is not None and found.name == "ci"
        assert found.allows("write", "team/app") and not found.allows("admin", "team/app")
        assert not found.allows("read", "other/app")
        assert store.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
        assert store.authenticate("garbage") is None
        store.revoke_token("ci")
        assert store.authenticate(secret) is None
        with pytest.raises(NotFound):
            store.revoke_token("nope")
        assert record.workspace == "team/*"
    finally:
        store.close()


def test_retention_keeps_newest_and_never_the_latest(store_url: str) -> None:
    key = new_key_text()
    store = new_store(store_url, key, retention=2)
    try:
        for serial in range(1, 6):
            write(store, "ws", body(serial))
        assert [v.serial for v in store.list_versions("ws")] == [5, 4]
    finally:
        store.close()
    keep_all = new_store(store_url, key)  # the default keeps everything
    try:
        for serial in range(10, 13):
            write(keep_all, "other", body(serial))
        assert [v.serial for v in keep_all.list_versions("other")] == [12, 11, 10]
    finally:
        keep_all.close()


@pytest.fixture(scope="module")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> SqlStore:
    path = tmp_path_factory.mktemp("model") / "model.db"
    store = new_store(f"sqlite:///{path}")
    yield store  # type: ignore[misc]
    store.close()


lock_ops = st.lists(
    st.one_of(
        st.tuples(st.just("lock"), st.sampled_from(["A", "B", "C"])),
        st.tuples(st.just("unlock"), st.sampled_from(["A", "B", "C"])),
        st.tuples(st.just("force"), st.none()),
        st.tuples(st.just("write"), st.sampled_from(["A", "B", "C", None])),
    ),
    max_size=25,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=lock_ops)
def test_lock_and_fencing_rules_match_model(model_store: SqlStore, ops: list) -> None:
    """Whatever the sequence: at most one holder; only the holder's ID unlocks or
    writes; no ID writes only when unlocked; every accepted write is a new serial.
    The holder's own LOCK sent again, and an UNLOCK sent again by an ID that released
    itself, succeed as retries (every call here is the same token)."""
    ws = f"h/{uuid.uuid4().hex}"
    holder: str | None = None
    # The newest release of each lock ID: its own unlock (True) or a force-unlock.
    released_itself: dict[str, bool] = {}
    serial = 0
    for op, lock_id in ops:
        if op == "lock":
            result = model_store.acquire_lock(ws, {"ID": lock_id, "Who": lock_id}, WRITER)
            assert result is not None
            assert result.acquired == (holder in (None, lock_id))
            assert result.lock.retry == (holder == lock_id)
            holder = holder or lock_id
            assert result.lock.id == holder
        elif op == "unlock":
            if holder == lock_id:
                model_store.release_lock(ws, lock_id, WRITER)
                released_itself[lock_id] = True
                holder = None
            elif released_itself.get(lock_id):
                assert model_store.release_lock(ws, lock_id, WRITER).retry
            else:
                with pytest.raises(NotFound if holder is None else Conflict):
                    model_store.release_lock(ws, lock_id, WRITER)
        elif op == "force":
            if holder is None:
                with pytest.raises(NotFound):
                    model_store.release_lock(ws, None, ADMIN)
            else:
                model_store.release_lock(ws, None, ADMIN)
                released_itself[holder] = False
                holder = None
        else:
            allowed = lock_id == holder
            if allowed:
                write(model_store, ws, body(serial + 1), lock_id=lock_id)
                serial += 1
            else:
                with pytest.raises(Conflict):
                    write(model_store, ws, body(serial + 1), lock_id=lock_id)
        got = model_store.get_lock(ws)
        assert (got.id if got else None) == holder
    assert [v.serial for v in model_store.list_versions(ws)] == list(range(serial, 0, -1))


write_ops = st.lists(
    st.tuples(st.integers(0, 8), st.sampled_from(["L1", "L2"]), st.booleans()), max_size=20
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=write_ops)
def test_serial_and_lineage_rules_match_model(model_store: SqlStore, ops: list) -> None:
    ws = f"w/{uuid.uuid4().hex}"
    latest: tuple[int, str] | None = None
    latest_data = b""
    kept = []
    for serial, lineage, admin in ops:
        data = body(serial, lineage, marker=f"{serial}{lineage}{admin}")
        if data == latest_data:  # a retry of the latest body: accepted, nothing new
            write(model_store, ws, data, ADMIN if admin else WRITER)
            continue
        ok = latest is None or (serial > latest[0] and (lineage == latest[1] or admin))
        if ok:
            write(model_store, ws, data, ADMIN if admin else WRITER)
            latest = (serial, lineage)
            latest_data = data
            kept.append(serial)
        else:
            with pytest.raises(Conflict) as err:
                write(model_store, ws, data, ADMIN if admin else WRITER)
            assert str(latest[0]) in err.value.message or latest[1] in err.value.message
    assert [v.serial for v in model_store.list_versions(ws)] == sorted(kept, reverse=True)


WRITER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from driftsafe.store import SqlStore, Actor
    from driftsafe.store.crypto import Cipher, decode_key
    from driftsafe.state.model import parse_state
    store = SqlStore(sys.argv[1], Cipher(decode_key(sys.argv[2], "t")))
    store.initialize()
    pad = "x" * 2_000_000
    serial = 0
    while True:
        serial += 1
        data = json.dumps({"version": 4, "terraform_version": "1.15.5", "serial": serial,
            "lineage": "L", "outputs": {"pad": {"value": pad, "type": "string"}},
            "resources": []}).encode()
        store.write_state("crash", data, parse_state(data), Actor("w"), lock_id=None,
                          findings=[])
        print(serial, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_mid_write_leaves_previous_version_readable(store_url: str, tmp_path: Path) -> None:
    key = new_key_text()
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), store_url, key], stdout=subprocess.PIPE, text=True
    )
    acknowledged = 0
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while acknowledged < 5 and time.monotonic() < deadline:
        acknowledged = int(proc.stdout.readline())
    time.sleep(0.037)  # somewhere inside the next write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    store = new_store(store_url, key)
    try:
        found = store.list_versions("crash")
        serials = [v.serial for v in found]
        assert serials == list(range(serials[0], 0, -1))
        assert serials[0] >= acknowledged
        for version in found:
            _, data = store.get_version("crash", version.serial)
            assert json.loads(data)["serial"] == version.serial
        write(store, "crash", body(serials[0] + 1))  # and it takes writes again
    finally:
        store.close()


@pytest.mark.pg
def test_release_notifies_another_store_on_postgres(make_store_url) -> None:  # type: ignore[no-untyped-def]
    url = make_store_url("pg")
    key = new_key_text()
    a, b = new_store(url, key), new_store(url, key)
    heard = threading.Event()
    try:
        unsubscribe = b.listen(lambda ws: heard.set() if ws == "shared" else None)
        time.sleep(0.5)  # LISTEN is in place
        assert a.acquire_lock("shared", {"ID": "X"}, WRITER).acquired  # type: ignore[union-attr]
        assert not b.acquire_lock("shared", {"ID": "Y"}, WRITER).acquired  # type: ignore[union-attr]
        a.release_lock("shared", "X", WRITER)
        assert heard.wait(5)
        unsubscribe()
        # The queue is shared too: b's first waiter is served before a newcomer's waiter.
        first = b.add_waiter("q", 30)
        second = a.add_waiter("q", 30)
        assert a.acquire_lock("q", {"ID": "S"}, WRITER, waiter=second) is None
        assert b.acquire_lock("q", {"ID": "F"}, WRITER, waiter=first).acquired  # type: ignore[union-attr]
    finally:
        a.close()
        b.close()


def test_large_body_round_trips_encrypted(store_url: str) -> None:
    # Over the size that SQLite gets in slices through a blob handle.
    filler = os.urandom(3 * 1024 * 1024).hex()
    data = json.dumps(
        {
            "version": 4,
            "terraform_version": "1.15.5",
            "serial": 1,
            "lineage": "L",
            "outputs": {"big": {"value": filler, "type": "string"}},
            "resources": [],
        }
    ).encode()
    store = new_store(store_url)
    try:
        record, created = write(store, "big", data)
        assert created and record.size == len(data)
        assert store.latest_state("big")[1] == data  # type: ignore[index]
        with store.pool.connect() as conn:
            stored = conn.execute(sa.text("SELECT body FROM ds_versions")).scalar_one()
        assert filler[:64].encode() not in bytes(stored)
        restored = store.restore("big", 1, ADMIN)
        assert (
            json.loads(store.get_version("big", restored.serial)[1])["outputs"]
            == json.loads(data)["outputs"]
        )
    finally:
        store.close()
