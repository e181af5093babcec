"""Tokens in the store (schema 3): rotation with a grace period, reuse of a revoked
name, expiry, last use; on SQLite and PostgreSQL, and migrated from schema 1."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from driftsafe.errors import BadRequest, Conflict, NotFound
from driftsafe.store import LAST_USED_EVERY, SqlStore
from driftsafe.store.crypto import Cipher, decode_key, new_key_text


def new_store(url: str) -> SqlStore:
    store = SqlStore(url, Cipher(decode_key(new_key_text(), "t")))
    store.initialize()
    return store


def backdate(store: SqlStore, token_id: str, **columns: float) -> None:
    """Move a token's times into the past, as if it had been created long ago."""
    with store.write_tx() as conn:
        conn.execute(
            sa.text(
                "UPDATE ds_tokens SET "
                + ", ".join(f"{name} = :{name}" for name in columns)
                + " WHERE id = :id"
            ),
            {"id": token_id, **columns},
        )


def test_a_revoked_name_can_be_reused(store_url: str) -> None:
    store = new_store(store_url)
    try:
        _, first = store.create_token("ci", "write", "lab/*")
        with pytest.raises(Conflict, match="token rotate ci"):
            store.create_token("ci", "write", "lab/*")
        store.revoke_token("ci")
        record, second = store.create_token("ci", "read")
        assert record.scope == "read"
        assert store.authenticate(first) is None
        found = store.authenticate(second)
        assert found is not None and found.name == "ci" and found.scope == "read"
        assert [t.status() for t in store.list_tokens()] == ["revoked", "active"]
        assert [t.status() for t in store.list_tokens(include_revoked=False)] == ["active"]
    finally:
        store.close()


def test_rotate_keeps_name_scope_and_glob_and_kills_the_old_secret(store_url: str) -> None:
    store = new_store(store_url)
    try:
        old, old_secret = store.create_token("ci", "write", "myapp/*")
        new, new_secret = store.rotate_token("ci")
        assert new_secret != old_secret
        assert (new.name, new.scope, new.workspace) == ("ci", "write", "myapp/*")
        assert store.authenticate(old_secret) is None  # at once, without --grace
        live = store.authenticate(new_secret)
        assert live is not None and live.allows("write", "myapp/a/b/c")
        with pytest.raises(NotFound):
            store.rotate_token("nope")
        rotations = [e for e in store.audit_events() if e.action == "token-rotate"]
        assert len(rotations) == 1 and rotations[0].detail["name"] == "ci"
        assert old.id != new.id
    finally:
        store.close()


def test_rotate_with_grace_keeps_the_old_secret_until_it_ends(store_url: str) -> None:
    store = new_store(store_url)
    try:
        old, old_secret = store.create_token("ci", "write", "*")
        _, new_secret = store.rotate_token("ci", grace=3600)
        assert store.authenticate(old_secret) is not None
        assert store.authenticate(new_secret) is not None
        statuses = {t.id: t.status() for t in store.list_tokens()}
        assert statuses[old.id] == "retiring"
        # The grace ends: the old secret is refused, the new one still works.
        backdate(store, old.id, revoked_at=time.time() - 1)
        assert store.authenticate(old_secret) is None
        assert store.authenticate(new_secret) is not None
        # A revocation ends every secret of the name at once, a retiring one too.
        _, third = store.rotate_token("ci", grace=3600)
        store.revoke_token("ci")
        assert store.authenticate(new_secret) is None and store.authenticate(third) is None
        with pytest.raises(BadRequest):
            store.rotate_token("ci", grace=-1)
    finally:
        store.close()


def test_expiry_and_rotation_keeps_the_lifetime(store_url: str) -> None:
    store = new_store(store_url)
    try:
        record, secret = store.create_token("short", "read", expires_in=3600)
        assert record.expires_at is not None
        assert record.expires_at == pytest.approx(time.time() + 3600, abs=30)
        assert store.authenticate(secret) is not None
        backdate(store, record.id, created_at=time.time() - 7200, expires_at=time.time() - 1)
        assert store.authenticate(secret) is None
        expired = store.authenticate(secret, expired=True)
        assert expired is not None and expired.expired() and expired.status() == "expired"
        assert not expired.allows("read")
        # Rotating an expired token gives a secret with the same lifetime, from now.
        fresh, fresh_secret = store.rotate_token("short")
        assert fresh.expires_at == pytest.approx(time.time() + 7199, abs=30)
        assert store.authenticate(fresh_secret) is not None
        with pytest.raises(BadRequest):
            store.create_token("zero", "read", expires_in=0)
        forever, _ = store.create_token("forever", "read")
        assert forever.expires_at is None
        assert store.rotate_token("forever")[0].expires_at is None
    finally:
        store.close()


def test_last_use_is_written_at_most_once_a_minute(store_url: str) -> None:
    store = new_store(store_url)
    try:
        record, _ = store.create_token("ci", "read")
        now = time.time()
        assert store.touch_token(record.id, now) is True
        assert store.touch_token(record.id, now + 1) is False  # another server wrote it
        assert store.touch_token(record.id, now + LAST_USED_EVERY + 1) is True
        (listed,) = store.list_tokens()
        assert listed.last_used_at == pytest.approx(now + LAST_USED_EVERY + 1)
        assert listed.to_json()["last_used_at"].endswith("Z")
    finally:
        store.close()


def test_schema_1_tokens_migrate_and_their_names_become_reusable(store_url: str) -> None:
    key = new_key_text()
    old = SqlStore(store_url, Cipher(decode_key(key, "t")))
    try:
        assert old.initialize(target=1) == [1]
        _, secret = old.create_token("ci", "write", "lab/*")
        with old.write_tx() as conn:  # revoked as schema 1 recorded it
            conn.execute(sa.text("UPDATE ds_tokens SET revoked_at = :t"), {"t": time.time()})
    finally:
        old.close()
    store = SqlStore(store_url, Cipher(decode_key(key, "t")))
    try:
        assert 3 in store.initialize()
        (migrated,) = store.list_tokens()
        assert (migrated.name, migrated.workspace, migrated.status()) == ("ci", "lab/*", "revoked")
        assert migrated.expires_at is None and migrated.last_used_at is None
        assert store.authenticate(secret) is None
        _, again = store.create_token("ci", "write", "lab/*")  # refused before schema 3
        assert store.authenticate(again) is not None
        with pytest.raises(Conflict):
            store.create_token("ci", "read")
    finally:
        store.close()
