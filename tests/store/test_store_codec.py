"""Versions stored as zstd deltas against keyframes: round trips, the keyframe policy,
the sha256 check on every read, retention that keeps needed keyframes, opaque bodies,
big states, and key rotation over the new format."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from history import History

from driftsafe.errors import StoreError
from driftsafe.settings import Settings
from driftsafe.state import TfState
from driftsafe.state.model import parse_state
from driftsafe.store import Actor, SqlStore, open_store
from driftsafe.store import codec as codec_mod
from driftsafe.store.crypto import Cipher, decode_key, new_key_text
from driftsafe.store.rotate import rotate_key

WRITER = Actor("writer", "127.0.0.1")
ADMIN = Actor("admin", "127.0.0.1", admin=True)


def new_store(url: str, key: str | None = None, **kw: int) -> SqlStore:
    store = SqlStore(url, Cipher(decode_key(key or new_key_text(), "test")), **kw)
    store.initialize()
    return store


def write(store: SqlStore, ws: str, data: bytes) -> None:
    store.write_state(ws, data, parse_state(data), WRITER, lock_id=None, findings=[])


def codecs(store: SqlStore, ws: str) -> list[tuple[int, str, int | None]]:
    with store.pool.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT serial, codec, base_serial FROM ds_versions WHERE workspace = :ws "
                "ORDER BY serial"
            ),
            {"ws": ws},
        )
        return [(int(r[0]), r[1], None if r[2] is None else int(r[2])) for r in rows]


def stored_bytes(store: SqlStore) -> int:
    with store.pool.connect() as conn:
        versions = conn.execute(
            sa.text("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM ds_versions")
        ).scalar_one()
        keyframes = conn.execute(
            sa.text("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM ds_keyframes")
        ).scalar_one()
    return int(versions) + int(keyframes)


def test_history_round_trips_as_keyframes_and_deltas(store_url: str) -> None:
    store = new_store(store_url)
    history = History()
    written = {}
    try:
        for _ in range(40):
            data = history.next()
            written[history.serial] = data
            write(store, "ws", data)
        for serial, data in written.items():
            record, body = store.get_version("ws", serial)
            assert body == data and record.sha256 == hashlib.sha256(data).hexdigest()
        assert store.latest_state("ws")[1] == written[40]  # type: ignore[index]
        rows = codecs(store, "ws")
        keyframes = [serial for serial, kind, base in rows if kind == "keyframe"]
        assert rows[0] == (1, "keyframe", 1)
        assert len(keyframes) >= 2, rows  # the policy started a new one along the way
        for serial, kind, base in rows:
            assert kind in ("keyframe", "delta")
            # No chains: a delta names a keyframe at or before it, never another delta.
            assert base in keyframes and base <= serial
        plain = sum(len(d) for d in written.values())
        assert stored_bytes(store) < 0.1 * plain, (stored_bytes(store), plain)
    finally:
        store.close()


def test_keyframe_policy_bounds_deltas_by_keyframe_size(store_url: str) -> None:
    store = new_store(store_url)
    history = History(resources=120)
    try:
        for _ in range(60):
            write(store, "ws", history.next())
        with store.pool.connect() as conn:
            frames = conn.execute(
                sa.text("SELECT serial, stored_size, delta_bytes FROM ds_keyframes")
            ).all()
            for serial, stored_size, delta_bytes in frames:
                deltas = conn.execute(
                    sa.text(
                        "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM ds_versions "
                        "WHERE workspace = 'ws' AND codec = 'delta' AND base_serial = :s"
                    ),
                    {"s": serial},
                ).scalar_one()
                assert int(deltas) == int(delta_bytes)
                assert delta_bytes <= codec_mod.KEYFRAME_FACTOR * stored_size
    finally:
        store.close()


def test_every_read_checks_sha256_and_fails_loudly(store_url: str) -> None:
    store = new_store(store_url)
    history = History()
    try:
        for _ in range(5):
            write(store, "ws", history.next())
        with store.pool.begin() as conn:
            conn.execute(
                sa.text("UPDATE ds_versions SET sha256 = :bad WHERE serial = 3"), {"bad": "0" * 64}
            )
        with pytest.raises(StoreError, match=r"version 3 of 'ws' does not match its sha256"):
            store.get_version("ws", 3)
        # A flipped byte of a stored delta fails authentication: never served.
        with store.pool.begin() as conn:
            body = conn.execute(sa.text("SELECT body FROM ds_versions WHERE serial = 4")).scalar()
            broken = bytes(body[:-1]) + bytes([body[-1] ^ 1])
            conn.execute(
                sa.text("UPDATE ds_versions SET body = :b WHERE serial = 4"), {"b": broken}
            )
        with pytest.raises(StoreError, match="failed authentication"):
            store.get_version("ws", 4)
        # A lost keyframe is named.
        with store.pool.begin() as conn:
            conn.execute(sa.text("DELETE FROM ds_keyframes"))
        store.keyframe_cache.clear()
        with pytest.raises(StoreError, match="keyframe 1 of 'ws' is missing"):
            store.get_version("ws", 5)
    finally:
        store.close()


def test_retention_never_drops_a_keyframe_a_kept_version_needs(store_url: str) -> None:
    store = new_store(store_url, retention=3)
    history = History()
    written = {}
    try:
        for _ in range(25):
            data = history.next()
            written[history.serial] = data
            write(store, "ws", data)
        assert [v.serial for v in store.list_versions("ws")] == [25, 24, 23]
        rows = codecs(store, "ws")
        with store.pool.connect() as conn:
            kept = {
                int(s) for s in conn.execute(sa.text("SELECT serial FROM ds_keyframes")).scalars()
            }
        # Exactly the keyframes the kept versions are stored against: none lost, none left.
        assert kept == {base for _, _, base in rows}
        assert any(base is not None and base < 23 for _, _, base in rows), rows
        store.keyframe_cache.clear()
        for serial in (23, 24, 25):
            assert store.get_version("ws", serial)[1] == written[serial]
    finally:
        store.close()


def test_opaque_bodies_and_big_states(store_url: str) -> None:
    """Bodies are bytes to the codec: an encrypted envelope (random bytes) round-trips,
    and a state over the delta limit is always its own keyframe."""
    store = new_store(store_url)
    try:
        for serial in (1, 2, 3):
            envelope = os.urandom(50_000)
            state = TfState(4, "1.15.5", serial, "L", 0, {})
            store.write_state("enc", envelope, state, WRITER, lock_id=None, findings=[])
            assert store.get_version("enc", serial)[1] == envelope
        big = History(resources=10)
        filler = os.urandom(codec_mod.DELTA_MAX_BYTES // 2 + 1).hex()
        for _ in range(2):
            data = big.next()
            data = data.replace(
                b'"outputs": {}', b'"outputs": {"f": {"value": "%s"}}' % filler.encode()
            )
            assert len(data) > codec_mod.DELTA_MAX_BYTES
            write(store, "big", data)
            assert store.latest_state("big")[1] == data  # type: ignore[index]
        assert [kind for _, kind, _ in codecs(store, "big")] == ["keyframe", "keyframe"]
    finally:
        store.close()


def test_restore_round_trips(store_url: str) -> None:
    store = new_store(store_url)
    history = History()
    try:
        first = history.next()
        write(store, "ws", first)
        for _ in range(4):
            write(store, "ws", history.next())
        record = store.restore("ws", 1, ADMIN)
        restored = json.loads(store.get_version("ws", record.serial)[1])
        assert restored["resources"] == json.loads(first)["resources"]
    finally:
        store.close()


def test_rotate_key_reencrypts_keyframes_and_deltas(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, db=f"sqlite:///{tmp_path}/ds.db")
    store = open_store(settings)
    history = History()
    written = {}
    for _ in range(12):
        data = history.next()
        written[history.serial] = data
        write(store, "ws", data)
    store.close()
    assert rotate_key(settings).versions == 12
    store = open_store(settings, create_key=False)
    try:
        for serial, data in written.items():
            assert store.get_version("ws", serial)[1] == data
        write(store, "ws", history.next())  # and the new key writes deltas
        assert codecs(store, "ws")[-1][1] == "delta"
    finally:
        store.close()
