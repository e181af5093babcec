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
from driftsafe.store.models import SCOPES, Actor, AuditEvent, TokenRecord, WorkspaceSummary
from driftsafe.store.recode import recode_versions, reencrypt
from driftsafe.store.versions import VersionsMixin

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
    )


class SqlStore(VersionsMixin):
    """Everything driftsafe persists. Thread-safe; every method is one transaction."""

    def __init__(self, url: str, cipher: Cipher, *, retention: int = 0) -> None:
        super().__init__(url, cipher, retention=retention)
        self._listen_thread: threading.Thread | None = None
        self._listen_stop = threading.Event()

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

    def create_token(self, name: str, scope: str, workspace: str = "*") -> tuple[TokenRecord, str]:
        """Create a token; the secret is returned once and only its hash is kept."""
        if scope not in SCOPES:
            raise BadRequest(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if not name or len(name) > 200:
            raise BadRequest("token name must be 1-200 characters")
        if not workspace:
            raise BadRequest("workspace glob must not be empty (use '*' for all)")
        token_id = secrets.token_hex(6)
        secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        with self.write_tx() as conn:
            exists = conn.execute(
                sa.select(schema.tokens.c.id).where(schema.tokens.c.name == name)
            ).first()
            if exists:
                raise Conflict(f"a token named {name!r} already exists")
            conn.execute(
                schema.tokens.insert().values(
                    id=token_id,
                    name=name,
                    hash=_hash_token(secret),
                    scope=scope,
                    workspace=workspace,
                    created_at=now,
                )
            )
            self.audit_in(
                conn,
                "token-create",
                None,
                Actor(),
                "ok",
                {"name": name, "scope": scope, "workspace": workspace},
                now=now,
            )
        return TokenRecord(token_id, name, scope, workspace, now), secret

    def list_tokens(self) -> list[TokenRecord]:
        with self.read_tx() as conn:
            rows = conn.execute(sa.select(schema.tokens).order_by(schema.tokens.c.created_at))
            return [_token_from_row(row) for row in rows]

    def revoke_token(self, name: str) -> TokenRecord:
        now = time.time()
        t = schema.tokens
        with self.write_tx() as conn:
            row = conn.execute(sa.select(t).where(t.c.name == name)).first()
            if row is None:
                raise NotFound(f"no token named {name!r}")
            if row.revoked_at is None:
                conn.execute(t.update().where(t.c.name == name).values(revoked_at=now))
                self.audit_in(conn, "token-revoke", None, Actor(), "ok", {"name": name}, now=now)
                row = conn.execute(sa.select(t).where(t.c.name == name)).one()
            return _token_from_row(row)

    def authenticate(self, secret: str) -> TokenRecord | None:
        """The live token for ``secret``, or None (unknown, wrong or revoked)."""
        token_id = ""
        if secret.startswith(TOKEN_PREFIX):
            token_id = secret[len(TOKEN_PREFIX) :].split("_", 1)[0]
        with self.read_tx() as conn:
            row = conn.execute(_TOKEN_BY_ID, {"token_id": token_id}).first()
        expected = row.hash if row is not None else _DUMMY_HASH
        matches = hmac.compare_digest(expected, _hash_token(secret))
        if row is None or not matches or row.revoked_at is not None:
            return None
        return _token_from_row(row)

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
            return [
                AuditEvent(
                    id=row.id,
                    at=row.at,
                    action=row.action,
                    workspace=row.workspace,
                    token=row.token,
                    remote_addr=row.remote_addr,
                    outcome=row.outcome,
                    detail=json.loads(row.detail),
                )
                for row in conn.execute(query)
            ]

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

    def _listen_loop(self) -> None:
        import psycopg

        while not self._listen_stop.is_set():
            try:
                with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
                    conn.execute("LISTEN driftsafe_locks")
                    while not self._listen_stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.notify_local(note.payload)
            except psycopg.Error as exc:
                # Waiters also poll, so a lost listener only slows hand-over: retry.
                log.warning("lock listener lost its PostgreSQL connection: %s", exc)
                if self._listen_stop.wait(1.0):
                    return
