"""The SQLAlchemy Core store: SQLite (WAL) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from driftsafe.errors import BadRequest, Conflict, NotFound
from driftsafe.store import schema
from driftsafe.store.crypto import Cipher
from driftsafe.store.database import libpq_url
from driftsafe.store.models import (
    LAST_USED_EVERY,
    SCOPES,
    Actor,
    AuditEvent,
    TokenRecord,
    WorkspaceSummary,
)
from driftsafe.store.queries import ConsoleMixin, audit_event
from driftsafe.store.recode import recode_versions, reencrypt
from driftsafe.timestamps import rfc3339, rfc3339_or_none

log = logging.getLogger("driftsafe.store")

TOKEN_PREFIX = "dst_"
_KEY_CHECK = b"driftsafe key check"
# A hash compared when the token id is unknown, so that case costs the same time.
_DUMMY_HASH = hashlib.sha256(b"driftsafe-no-such-token").hexdigest()


# Built once: the hot statements of every request (building one costs more than
# running it on SQLite).
_TOKEN_BY_ID = sa.select(schema.tokens).where(schema.tokens.c.id == sa.bindparam("token_id"))


def _hash_token(token: str) -> str:
    # Tokens carry 256 random bits: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


def _token_from_row(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        scope=row.scope,
        workspace=row.workspace,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )


def _new_secret() -> tuple[str, str]:
    """A token id and its secret; the id is part of the secret (a lookup key)."""
    token_id = secrets.token_hex(6)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


class SqlStore(ConsoleMixin):
    """Everything driftsafe persists. Thread-safe; every method is one transaction."""

    token_record = staticmethod(_token_from_row)  # the console's sessions read tokens

    def __init__(self, url: str, cipher: Cipher, *, retention: int = 0) -> None:
        super().__init__(url, cipher, retention=retention)
        self._listen_thread: threading.Thread | None = None
        self._listen_stop = threading.Event()
        self._listen_up = threading.Event()

    # lifecycle -----------------------------------------------------------------

    def initialize(self, *, target: int = schema.LATEST) -> list[int]:
        """Create or upgrade the schema, and check the key matches the stored data.
        Versions written before schema 6 are then re-encoded (resuming any earlier,
        interrupted re-encoding)."""
        now = time.time()
        with self.write_tx() as conn:
            if self.is_postgres:
                # Two servers starting together must not both run a migration.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7316021)"))
            applied = schema.migrate(conn, now=now, target=target)
            if target >= 1:
                check = conn.execute(
                    sa.select(schema.meta.c.value).where(schema.meta.c.key == "key_check")
                ).scalar()
                if check is None:
                    nonce, sealed = self.cipher.encrypt(_KEY_CHECK, "key_check")
                    value = json.dumps(
                        {"key_id": self.cipher.key_id, "nonce": nonce.hex(), "data": sealed.hex()}
                    )
                    conn.execute(schema.meta.insert().values(key="key_check", value=value))
                else:
                    stored = json.loads(check)
                    self.cipher.decrypt(
                        bytes.fromhex(stored["nonce"]),
                        bytes.fromhex(stored["data"]),
                        "key_check",
                        stored["key_id"],
                    )
        if target >= 6:
            recode_versions(self)
        return applied

    def schema_version(self) -> int:
        with self.read_tx() as conn:
            return schema.current_version(conn)

    def close(self) -> None:
        self._listen_stop.set()
        if self._listen_thread is not None:
            self._listen_thread.join(timeout=5)
        self.pool.dispose()

    def ping(self) -> None:
        with self.read_tx() as conn:
            conn.execute(sa.text("SELECT 1"))

    # tokens --------------------------------------------------------------------

    def create_token(
        self,
        name: str,
        scope: str,
        workspace: str = "*",
        *,
        expires_in: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """Create a token; the secret is returned once and only its hash is kept.
        A name is taken while a token of that name is not revoked; a revoked name
        can be used again. ``expires_in`` (seconds) makes the token expire."""
        if scope not in SCOPES:
            raise BadRequest(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if not name or len(name) > 200:
            raise BadRequest("token name must be 1-200 characters")
        if not workspace:
            raise BadRequest("workspace glob must not be empty (use '*' for all)")
        if expires_in is not None and expires_in <= 0:
            raise BadRequest("a token's lifetime must be more than 0 seconds")
        token_id, secret = _new_secret()
        now = time.time()
        expires_at = None if expires_in is None else now + expires_in
        t = schema.tokens
        with self.write_tx() as conn:
            live = conn.execute(
                sa.select(t.c.id).where(t.c.name == name, t.c.revoked_at.is_(None))
            ).first()
            if live:
                raise Conflict(
                    f"a token named {name!r} already exists: rotate it (driftsafe token "
                    f"rotate {name}) or revoke it first"
                )
            row = {
                "id": token_id,
                "name": name,
                "hash": _hash_token(secret),
                "scope": scope,
                "workspace": workspace,
                "created_at": now,
            }
            if expires_at is not None:  # a column of schema 3
                row["expires_at"] = expires_at
            conn.execute(t.insert().values(**row))
            self.audit_in(
                conn,
                "token-create",
                None,
                Actor(),
                "ok",
                {
                    "name": name,
                    "scope": scope,
                    "workspace": workspace,
                    "expires_at": rfc3339_or_none(expires_at),
                },
                now=now,
            )
        record = TokenRecord(token_id, name, scope, workspace, now, expires_at=expires_at)
        return record, secret

    def rotate_token(
        self, name: str, *, grace: float = 0.0, expires_in: float | None = None
    ) -> tuple[TokenRecord, str]:
        """A new secret for token ``name``, with its scope and glob. The old secret
        stops working at once (``grace`` 0) or ``grace`` seconds from now. The new
        one expires after ``expires_in`` seconds, or, when None, after the lifetime
        the old one had (a token without an expiry stays without one)."""
        if grace < 0:
            raise BadRequest("the grace period must not be negative")
        if expires_in is not None and expires_in <= 0:
            raise BadRequest("a token's lifetime must be more than 0 seconds")
        token_id, secret = _new_secret()
        now = time.time()
        t = schema.tokens
        with self.write_tx() as conn:
            old = conn.execute(
                sa.select(t).where(t.c.name == name, t.c.revoked_at.is_(None))
            ).first()
            if old is None:
                raise NotFound(f"no token named {name!r} to rotate (create it: it may be revoked)")
            lifetime = (
                expires_in
                if expires_in is not None
                else None
                if old.expires_at is None
                else old.expires_at - old.created_at
            )
            expires_at = None if lifetime is None else now + lifetime
            retire_at = now + grace
            # Rows still in the grace of an earlier rotation end no later than this one.
            conn.execute(
                t.update()
                .where(t.c.name == name, t.c.revoked_at > retire_at)
                .values(revoked_at=retire_at)
            )
            conn.execute(t.update().where(t.c.id == old.id).values(revoked_at=retire_at))
            conn.execute(
                t.insert().values(
                    id=token_id,
                    name=name,
                    hash=_hash_token(secret),
                    scope=old.scope,
                    workspace=old.workspace,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            self.audit_in(
                conn,
                "token-rotate",
                None,
                Actor(),
                "ok",
                {
                    "name": name,
                    "old_secret_until": rfc3339(retire_at),
                    "expires_at": rfc3339_or_none(expires_at),
                },
                now=now,
            )
        record = TokenRecord(token_id, name, old.scope, old.workspace, now, expires_at=expires_at)
        return record, secret

    def list_tokens(self, *, include_revoked: bool = True) -> list[TokenRecord]:
        """Every token record, oldest first; a rotated name has one record per secret."""
        t = schema.tokens
        query = sa.select(t).order_by(t.c.created_at)
        if not include_revoked:
            query = query.where(sa.or_(t.c.revoked_at.is_(None), t.c.revoked_at > time.time()))
        with self.read_tx() as conn:
            return [_token_from_row(row) for row in conn.execute(query)]

    def revoke_token(self, name: str) -> TokenRecord:
        """Revoke every secret of token ``name`` now, an old one in its grace period
        too. Returns the current record."""
        now = time.time()
        t = schema.tokens
        with self.write_tx() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.name == name).order_by(t.c.created_at.desc())
            ).all()
            if not rows:
                raise NotFound(f"no token named {name!r}")
            live = [r.id for r in rows if r.revoked_at is None or r.revoked_at > now]
            if live:
                conn.execute(t.update().where(t.c.id.in_(live)).values(revoked_at=now))
                self.audit_in(conn, "token-revoke", None, Actor(), "ok", {"name": name}, now=now)
            row = conn.execute(sa.select(t).where(t.c.id == rows[0].id)).one()
            return _token_from_row(row)

    def authenticate(self, secret: str, *, expired: bool = False) -> TokenRecord | None:
        """The live token for ``secret``, or None (unknown, wrong or revoked). An
        expired token is None too, unless ``expired`` asks for it (the server then
        says that it expired, and when)."""
        token_id = ""
        if secret.startswith(TOKEN_PREFIX):
            token_id = secret[len(TOKEN_PREFIX) :].split("_", 1)[0]
        with self.read_tx() as conn:
            row = conn.execute(_TOKEN_BY_ID, {"token_id": token_id}).first()
        expected = row.hash if row is not None else _DUMMY_HASH
        matches = hmac.compare_digest(expected, _hash_token(secret))
        if row is None or not matches:
            return None
        token = _token_from_row(row)
        now = time.time()
        if token.revoked(now) or (token.expired(now) and not expired):
            return None
        return token

    def touch_token(self, token_id: str, now: float) -> bool:
        """Record ``now`` as the token's last use, unless a use under
        ``LAST_USED_EVERY`` seconds ago is already recorded (another server may
        have written it). True when it wrote."""
        t = schema.tokens
        with self.write_tx() as conn:
            done = conn.execute(
                t.update()
                .where(
                    t.c.id == token_id,
                    sa.or_(t.c.last_used_at.is_(None), t.c.last_used_at <= now - LAST_USED_EVERY),
                )
                .values(last_used_at=now)
            )
            return bool(done.rowcount)

    # workspaces, audit, drift reports -------------------------------------------

    def list_workspaces(self) -> list[WorkspaceSummary]:
        v, w, lk = schema.versions, schema.workspaces, schema.locks
        counts = (
            sa.select(
                v.c.workspace,
                sa.func.max(v.c.serial).label("latest"),
                sa.func.count().label("n"),
            )
            .group_by(v.c.workspace)
            .subquery()
        )
        query = (
            sa.select(w.c.name, w.c.updated_at, counts.c.latest, counts.c.n, lk.c.id)
            .select_from(
                w.outerjoin(counts, counts.c.workspace == w.c.name).outerjoin(
                    lk, lk.c.workspace == w.c.name
                )
            )
            .where(sa.or_(counts.c.n.is_not(None), lk.c.id.is_not(None)))
            .order_by(w.c.name)
        )
        with self.read_tx() as conn:
            return [
                WorkspaceSummary(
                    name=row.name,
                    latest_serial=int(row.latest) if row.latest is not None else None,
                    versions=int(row.n or 0),
                    locked=row.id is not None,
                    updated_at=row.updated_at,
                )
                for row in conn.execute(query)
            ]

    def audit_events(self, workspace: str | None = None, limit: int = 100) -> list[AuditEvent]:
        a = schema.audit
        query = sa.select(a).order_by(a.c.id.desc()).limit(max(1, min(limit, 10_000)))
        if workspace is not None:
            query = query.where(a.c.workspace == workspace)
        with self.read_tx() as conn:
            return [audit_event(row) for row in conn.execute(query)]

    def add_drift_report(
        self, workspace: str, report: dict[str, Any], actor: Actor
    ) -> tuple[int, float]:
        now = time.time()
        with self.write_tx() as conn:
            new_id = conn.execute(
                schema.drift_reports.insert().values(
                    workspace=workspace, created_at=now, report=json.dumps(report, sort_keys=True)
                )
            ).inserted_primary_key
            assert new_id is not None
            self.audit_in(
                conn, "drift-report", workspace, actor, "ok", {"id": int(new_id[0])}, now=now
            )
            return int(new_id[0]), now

    def drift_reports(
        self, workspace: str, limit: int = 50
    ) -> list[tuple[int, float, dict[str, Any]]]:
        d = schema.drift_reports
        query = sa.select(d).where(d.c.workspace == workspace).order_by(d.c.id.desc()).limit(limit)
        with self.read_tx() as conn:
            return [(row.id, row.created_at, json.loads(row.report)) for row in conn.execute(query)]

    # key rotation ---------------------------------------------------------------

    def rotate_key(self, new: Cipher) -> int:
        """Re-encrypt every version with ``new`` in one transaction; returns the count.
        On any failure nothing changes and the old key still opens the store."""
        with self.write_tx() as conn:
            if self.is_postgres:
                conn.execute(sa.text("LOCK TABLE ds_versions, ds_keyframes IN EXCLUSIVE MODE"))
            count = reencrypt(self, conn, new)
            nonce, sealed = new.encrypt(_KEY_CHECK, "key_check")
            conn.execute(
                schema.meta.update()
                .where(schema.meta.c.key == "key_check")
                .values(
                    value=json.dumps(
                        {"key_id": new.key_id, "nonce": nonce.hex(), "data": sealed.hex()}
                    )
                )
            )
            self.audit_in(
                conn, "rotate-key", None, Actor(), "ok", {"versions": count, "key_id": new.key_id}
            )
        self.cipher = new
        return count

    # lock-release notifications -------------------------------------------------

    def listen(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(workspace)`` whenever a lock is released here or, on
        PostgreSQL, by any other process. Returns a function that unsubscribes."""
        with self._listeners_lock:
            self._listeners.append(callback)
            if self.is_postgres and self._listen_thread is None:
                self._listen_thread = threading.Thread(
                    target=self._listen_loop, name="driftsafe-pg-listen", daemon=True
                )
                self._listen_thread.start()

        def unsubscribe() -> None:
            with self._listeners_lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def listening(self) -> bool | None:
        """On PostgreSQL with a listener started: whether it is connected (it
        reconnects by itself after a restart); None otherwise."""
        if self._listen_thread is None:
            return None
        return self._listen_up.is_set()

    def _listen_loop(self) -> None:
        import psycopg

        while not self._listen_stop.is_set():
            try:
                with psycopg.connect(
                    libpq_url(self.url), autocommit=True, connect_timeout=5
                ) as conn:
                    conn.execute("LISTEN driftsafe_locks")
                    self._listen_up.set()
                    # Releases announced while no listener was connected are lost:
                    # wake every waiter once so none sleeps through one.
                    self.notify_local("*")
                    while not self._listen_stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.notify_local(note.payload)
            except psycopg.Error as exc:
                # Waiters also poll, so a lost listener only slows hand-over: retry.
                log.warning("lock listener lost its PostgreSQL connection: %s", exc)
            finally:
                self._listen_up.clear()
            if self._listen_stop.wait(0.5):
                return
