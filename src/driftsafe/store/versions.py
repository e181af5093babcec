"""State versions: every accepted write is a new immutable, encrypted row."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftsafe.errors import Conflict, DriftsafeError, NotFound
from driftsafe.state import TfState, VersionMeta, check_write, parse_state
from driftsafe.store import schema
from driftsafe.store.locks import LocksMixin
from driftsafe.store.models import Actor, VersionRecord

_META_COLUMNS = [c for c in schema.versions.c if c.name not in ("body", "nonce", "key_id", "id")]


_V = schema.versions
_LATEST_META = (
    sa.select(*_META_COLUMNS)
    .where(_V.c.workspace == sa.bindparam("ws"))
    .order_by(_V.c.serial.desc())
    .limit(1)
)
_LATEST_ROW = (
    sa.select(_V).where(_V.c.workspace == sa.bindparam("ws")).order_by(_V.c.serial.desc()).limit(1)
)

_VERSION_INSERT = _V.insert()
_VERSION_INSERT_ZEROBLOB = _V.insert().values(body=sa.func.zeroblob(sa.bindparam("body_size")))
_WORKSPACE_UPDATED = (
    schema.workspaces.update()
    .where(schema.workspaces.c.name == sa.bindparam("ws"))
    .values(updated_at=sa.bindparam("now"))
)

PENDING = json.dumps({"pending": True})


@dataclass(frozen=True)
class Sealed:
    """A state body already hashed and encrypted for one workspace: a caller that
    seals first can drop the plaintext before the database insert copies the blob."""

    workspace: str
    sha256: str
    size: int
    key_id: str
    nonce: bytes
    ciphertext: bytes


# Bodies above this size are streamed into SQLite in slices of this size.
BLOB_SLICE = 1024 * 1024


def _write_blob(conn: Connection, row_id: int, data: bytes) -> None:
    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, sqlite3.Connection)
    view = memoryview(data)
    with dbapi.blobopen(schema.versions.name, "body", row_id) as blob:
        for start in range(0, len(view), BLOB_SLICE):
            blob.write(view[start : start + BLOB_SLICE])


def version_from_row(row: Any) -> VersionRecord:
    findings = json.loads(row.findings)
    pending = isinstance(findings, dict)
    return VersionRecord(
        workspace=row.workspace,
        serial=int(row.serial),
        lineage=row.lineage,
        sha256=row.sha256,
        size=int(row.size),
        resources=int(row.resources),
        created_at=row.created_at,
        writer_token=row.writer_token,
        writer_who=row.writer_who,
        lock_id=row.lock_id,
        findings=[] if pending else findings,
        restored_from=int(row.restored_from) if row.restored_from is not None else None,
        scan_pending=pending,
    )


class VersionsMixin(LocksMixin):
    def _latest_meta(self, conn: Connection, workspace: str) -> VersionRecord | None:
        row = conn.execute(_LATEST_META, {"ws": workspace}).first()
        return version_from_row(row) if row else None

    def _body(self, conn: Connection, workspace: str, serial: int) -> tuple[VersionRecord, bytes]:
        v = schema.versions
        row = conn.execute(
            sa.select(v).where(v.c.workspace == workspace, v.c.serial == serial)
        ).first()
        if row is None:
            raise NotFound(f"workspace {workspace!r} has no version with serial {serial}")
        body = self.cipher.decrypt(row.nonce, row.body, workspace, row.key_id)
        return version_from_row(row), body

    def latest_state(self, workspace: str) -> tuple[VersionRecord, bytes] | None:
        with self.read_tx() as conn:
            row = conn.execute(_LATEST_ROW, {"ws": workspace}).first()
        if row is None:
            return None
        body = self.cipher.decrypt(row.nonce, row.body, workspace, row.key_id)
        return version_from_row(row), body

    def get_version(self, workspace: str, serial: int) -> tuple[VersionRecord, bytes]:
        with self.read_tx() as conn:
            return self._body(conn, workspace, serial)

    def list_versions(self, workspace: str, limit: int | None = None) -> list[VersionRecord]:
        v = schema.versions
        query = (
            sa.select(*_META_COLUMNS).where(v.c.workspace == workspace).order_by(v.c.serial.desc())
        )
        if limit:
            query = query.limit(limit)
        with self.read_tx() as conn:
            return [version_from_row(row) for row in conn.execute(query)]

    def _insert_version(
        self,
        conn: Connection,
        workspace: str,
        sealed: Sealed,
        state: TfState,
        *,
        now: float,
        actor: Actor,
        who: str | None,
        lock_id: str | None,
        findings: list[dict[str, Any]] | None,
        restored_from: int | None = None,
    ) -> VersionRecord:
        record = VersionRecord(
            workspace=workspace,
            serial=state.serial,
            lineage=state.lineage,
            sha256=sealed.sha256,
            size=sealed.size,
            resources=state.resource_count,
            created_at=now,
            writer_token=actor.token,
            writer_who=who,
            lock_id=lock_id,
            findings=findings or [],
            restored_from=restored_from,
            scan_pending=findings is None,
        )
        # A large body on SQLite is inserted as a zeroblob and then written in slices
        # through the blob handle, in the same transaction: bound as a parameter, the
        # sqlite3 module and SQLite would each copy it whole (and the cached statement
        # keeps its copy bound after the insert).
        stream = not self.is_postgres and sealed.size > BLOB_SLICE
        params = {
            "workspace": workspace,
            "serial": record.serial,
            "lineage": record.lineage,
            "sha256": record.sha256,
            "size": record.size,
            "resources": record.resources,
            "created_at": now,
            "writer_token": record.writer_token,
            "writer_who": who,
            "lock_id": lock_id,
            "findings": PENDING if findings is None else json.dumps(findings, sort_keys=True),
            "restored_from": restored_from,
            "key_id": sealed.key_id,
            "nonce": sealed.nonce,
        }
        if stream:
            params["body_size"] = len(sealed.ciphertext)
            result = conn.execute(_VERSION_INSERT_ZEROBLOB, params)
            key = result.inserted_primary_key
            assert key is not None
            _write_blob(conn, int(key[0]), sealed.ciphertext)
        else:
            conn.execute(_VERSION_INSERT, {**params, "body": sealed.ciphertext})
        conn.execute(_WORKSPACE_UPDATED, {"ws": workspace, "now": now})
        if self.retention > 0:
            self._apply_retention(conn, workspace)
        return record

    def _apply_retention(self, conn: Connection, workspace: str) -> None:
        v = schema.versions
        keep = (
            sa.select(v.c.serial)
            .where(v.c.workspace == workspace)
            .order_by(v.c.serial.desc())
            .limit(self.retention)
            .scalar_subquery()
        )
        cutoff = conn.execute(
            sa.select(sa.func.min(v.c.serial)).where(
                v.c.serial.in_(keep), v.c.workspace == workspace
            )
        ).scalar()
        if cutoff is not None:
            conn.execute(v.delete().where(v.c.workspace == workspace, v.c.serial < cutoff))

    def seal(self, workspace: str, body: bytes) -> Sealed:
        nonce, ciphertext = self.cipher.encrypt(body, workspace)
        return Sealed(
            workspace,
            hashlib.sha256(body).hexdigest(),
            len(body),
            self.cipher.key_id,
            nonce,
            ciphertext,
        )

    def write_state(
        self,
        workspace: str,
        body: bytes | Sealed,
        state: TfState,
        actor: Actor,
        *,
        lock_id: str | None,
        findings: list[dict[str, Any]] | None,
    ) -> tuple[VersionRecord, bool]:
        """Store ``body`` as a new version if the writer holds the lock (fencing) and
        the serial/lineage rules allow it. Returns (version, created); a retry of the
        exact latest body is accepted without a new version. ``findings`` None marks
        the secret scan as pending (see :meth:`set_findings`)."""
        now = time.time()
        sealed = body if isinstance(body, Sealed) else self.seal(workspace, body)
        del body
        if sealed.workspace != workspace or sealed.key_id != self.cipher.key_id:
            raise ValueError("sealed for another workspace or key")
        sha = sealed.sha256
        try:
            with self.write_tx() as conn:
                self.hold_workspace(conn, workspace, now)
                holder = self._lock_row(conn, workspace)
                if lock_id is not None and holder is None:
                    raise Conflict(
                        f"fenced: lock {lock_id} no longer holds {workspace!r} (it was "
                        "released or force-released); this write is refused, nothing written"
                    )
                if lock_id is not None and holder is not None and holder.id != lock_id:
                    raise Conflict(
                        f"fenced: lock {lock_id} no longer holds {workspace!r}; it is held by "
                        f"{holder.who} (lock {holder.id}); nothing written",
                        detail=holder.lock_info(),
                    )
                if lock_id is None and holder is not None:
                    raise Conflict(
                        f"{workspace!r} is locked by {holder.who} (lock {holder.id}); a write "
                        "without the lock ID is refused",
                        detail=holder.lock_info(),
                    )
                latest = self._latest_meta(conn, workspace)
                if (
                    latest is not None
                    and latest.serial == state.serial
                    and latest.lineage == state.lineage
                    and latest.sha256 == sha
                ):
                    return latest, False
                check_write(
                    VersionMeta(latest.serial, latest.lineage) if latest else None,
                    state,
                    admin=actor.admin,
                )
                if latest is not None and state.serial <= latest.serial:
                    raise Conflict(
                        f"serial {state.serial} is not above the latest serial {latest.serial}: "
                        "every version needs a new serial, even with another lineage"
                    )
                record = self._insert_version(
                    conn,
                    workspace,
                    sealed,
                    state,
                    now=now,
                    actor=actor,
                    who=holder.who if holder else None,
                    lock_id=lock_id,
                    findings=findings,
                )
                self.audit_in(
                    conn,
                    "write",
                    workspace,
                    actor,
                    "ok",
                    {
                        "serial": record.serial,
                        "lineage": record.lineage,
                        "lock_id": lock_id,
                        "sha256": sha,
                        "size": record.size,
                        "findings": None if findings is None else len(findings),
                    },
                    now=now,
                )
                return record, True
        except DriftsafeError as exc:
            self.record(
                "write",
                workspace,
                actor,
                "rejected",
                {
                    "serial": state.serial,
                    "lineage": state.lineage,
                    "lock_id": lock_id,
                    "reason": exc.message,
                },
            )
            raise

    def restore(self, workspace: str, serial: int, actor: Actor) -> VersionRecord:
        """Write version ``serial``'s content again as serial latest + 1."""
        now = time.time()
        try:
            with self.write_tx() as conn:
                self.hold_workspace(conn, workspace, now)
                holder = self._lock_row(conn, workspace)
                if holder is not None:
                    raise Conflict(
                        f"{workspace!r} is locked by {holder.who} (lock {holder.id}): "
                        "restore when no run holds it",
                        detail=holder.lock_info(),
                    )
                old, body = self._body(conn, workspace, serial)
                latest = self._latest_meta(conn, workspace)
                assert latest is not None  # the old version exists
                data = json.loads(body)
                data["serial"] = latest.serial + 1
                new_body = json.dumps(data, indent=2).encode() + b"\n"
                state = parse_state(new_body)
                record = self._insert_version(
                    conn,
                    workspace,
                    self.seal(workspace, new_body),
                    state,
                    now=now,
                    actor=actor,
                    who=None,
                    lock_id=None,
                    findings=None if old.scan_pending else old.findings,
                    restored_from=serial,
                )
                self.audit_in(
                    conn,
                    "restore",
                    workspace,
                    actor,
                    "ok",
                    {"from_serial": serial, "serial": record.serial},
                    now=now,
                )
                return record
        except DriftsafeError as exc:
            self.record(
                "restore", workspace, actor, "rejected", {"serial": serial, "reason": exc.message}
            )
            raise

    def set_findings(self, workspace: str, serial: int, findings: list[dict[str, Any]]) -> None:
        """Record the secret scan of a version written with its scan pending."""
        v = schema.versions
        with self.write_tx() as conn:
            conn.execute(
                v.update()
                .where(v.c.workspace == workspace, v.c.serial == serial)
                .values(findings=json.dumps(findings, sort_keys=True))
            )

    def pending_scans(self) -> list[tuple[str, int]]:
        """Versions whose scan never finished (e.g. the server stopped first)."""
        v = schema.versions
        with self.read_tx() as conn:
            rows = conn.execute(sa.select(v.c.workspace, v.c.serial).where(v.c.findings == PENDING))
            return [(row.workspace, int(row.serial)) for row in rows]
