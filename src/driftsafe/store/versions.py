"""State versions: every accepted write is a new immutable, encrypted row, stored as a
zstd delta against a keyframe of its workspace (see store/codec.py)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftsafe.errors import Conflict, DriftsafeError, NotFound, StoreError
from driftsafe.state import EncryptedState, TfState, VersionMeta, check_write, parse_body
from driftsafe.store import codec, schema
from driftsafe.store.codec import Keyframe, KeyframeCache
from driftsafe.store.locks import LocksMixin
from driftsafe.store.models import Actor, VersionRecord

# The meta columns come before ``body`` in the row: selecting only them never reads a
# stored body (SQLite would walk the blob's overflow pages to reach a later column).
_META_COLUMNS = [
    c
    for c in schema.versions.c
    if c.name not in ("body", "nonce", "key_id", "id", "codec", "base_serial")
]


_V = schema.versions
_K = schema.keyframes
_LATEST_META = (
    sa.select(*_META_COLUMNS)
    .where(_V.c.workspace == sa.bindparam("ws"))
    .order_by(_V.c.serial.desc())
    .limit(1)
)
_LATEST_SERIAL = (
    sa.select(_V.c.serial)
    .where(_V.c.workspace == sa.bindparam("ws"))
    .order_by(_V.c.serial.desc())
    .limit(1)
)
# A version row without its body (read apart, see ``_read_body``), with the body's size.
VERSION_HEAD = sa.select(
    *[c for c in _V.c if c.name != "body"], sa.func.length(_V.c.body).label("stored_len")
)
_VERSION_ROW = VERSION_HEAD.where(
    _V.c.workspace == sa.bindparam("ws"), _V.c.serial == sa.bindparam("serial")
)
# The keyframe a new version at ``serial`` is compressed against: the newest before it.
_KEYFRAME_BEFORE = (
    sa.select(_K.c.serial, _K.c.sha256, _K.c.size, _K.c.stored_size, _K.c.delta_bytes)
    .where(_K.c.workspace == sa.bindparam("ws"), _K.c.serial < sa.bindparam("serial"))
    .order_by(_K.c.serial.desc())
    .limit(1)
)
_KEYFRAME_META = sa.select(_K.c.sha256, _K.c.size, _K.c.stored_size, _K.c.key_id, _K.c.nonce).where(
    _K.c.workspace == sa.bindparam("ws"), _K.c.serial == sa.bindparam("serial")
)
_KEYFRAME_BODY = sa.select(_K.c.body).where(
    _K.c.workspace == sa.bindparam("ws"), _K.c.serial == sa.bindparam("serial")
)
_KEYFRAME_GROWS = (
    _K.update()
    .where(_K.c.workspace == sa.bindparam("ws"), _K.c.serial == sa.bindparam("kf"))
    .values(delta_bytes=_K.c.delta_bytes + sa.bindparam("grow"))
)

_VERSION_INSERT = _V.insert()
_WORKSPACE_UPDATED = (
    schema.workspaces.update()
    .where(schema.workspaces.c.name == sa.bindparam("ws"))
    .values(updated_at=sa.bindparam("now"))
)

PENDING = json.dumps({"pending": True})
# The findings of an OpenTofu encrypted envelope: never scanned (the server cannot read
# it). Kept in ``findings`` (before ``body`` in the row, see _META_COLUMNS) with the
# envelope's format, so the meta queries learn both without reading a body.
NOT_SCANNED = "encrypted by the client"


def not_scanned(envelope: EncryptedState) -> str:
    return json.dumps({"not_scanned": NOT_SCANNED, "format": envelope.format}, sort_keys=True)


@dataclass(frozen=True)
class Sealed:
    """A state body hashed (and, when it is big, already compressed) for one workspace.

    How it is finally stored depends on the workspace's keyframe, which is read inside
    the write transaction; so a body up to ``DELTA_MAX_BYTES`` is kept as it is. A
    bigger one is always its own keyframe: it is compressed here and the plaintext is
    not kept, so a caller that seals first can drop it before the database insert."""

    workspace: str
    sha256: str
    size: int
    plaintext: bytes | bytearray | None
    compressed: bytes | None


class StoredBodyError(StoreError):
    """A stored version or keyframe that does not read back: it fails authentication,
    does not decompress, lost its keyframe, or does not match its sha256."""


# Bodies above this size are moved in slices of this size: into SQLite through a blob
# handle, out of PostgreSQL with substring().
BLOB_SLICE = 1024 * 1024


def _write_blob(conn: Connection, table: str, row_id: int, data: bytes) -> None:
    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, sqlite3.Connection)
    view = memoryview(data)
    with dbapi.blobopen(table, "body", row_id) as blob:
        for start in range(0, len(view), BLOB_SLICE):
            blob.write(view[start : start + BLOB_SLICE])


def check_sha(plain: bytes, expected: str, what: str) -> None:
    actual = hashlib.sha256(plain).hexdigest()
    if actual != expected:
        raise StoredBodyError(
            f"{what} does not match its sha256 (stored {expected[:16]}..., read "
            f"{actual[:16]}...): refusing to serve it"
        )


def version_from_row(row: Any) -> VersionRecord:
    findings = json.loads(row.findings)
    encrypted = findings.get("format") if isinstance(findings, dict) else None
    pending = isinstance(findings, dict) and bool(findings.get("pending"))
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
        findings=findings if isinstance(findings, list) else [],
        restored_from=int(row.restored_from) if row.restored_from is not None else None,
        scan_pending=pending,
        encrypted_by_client=str(encrypted) if encrypted else None,
    )


class VersionsMixin(LocksMixin):
    keyframe_cache: KeyframeCache

    def _latest_meta(self, conn: Connection, workspace: str) -> VersionRecord | None:
        row = conn.execute(_LATEST_META, {"ws": workspace}).first()
        return version_from_row(row) if row else None

    # reading -------------------------------------------------------------------

    def _read_body(
        self, conn: Connection, table: sa.Table, where: Any, size: int
    ) -> bytes | bytearray:
        """A stored body. On PostgreSQL a big one comes in slices: fetched whole, the
        driver holds it as hex text and as bytes at once (three times its size)."""
        if not self.is_postgres or size <= BLOB_SLICE:
            data = conn.execute(sa.select(table.c.body).where(where)).scalar_one()
            return bytes(data)
        out = bytearray(size)
        for start in range(0, size, BLOB_SLICE):
            piece = conn.execute(
                sa.select(sa.func.substring(table.c.body, start + 1, BLOB_SLICE)).where(where)
            ).scalar_one()
            out[start : start + len(piece)] = piece
        return out

    def _keyframe_or_plaintext(
        self, conn: Connection, workspace: str, serial: int
    ) -> tuple[Keyframe | bytes, str]:
        """Keyframe ``serial`` of ``workspace`` from the cache, or else its plaintext,
        decoded and checked against its sha256; and that sha256."""
        meta = conn.execute(_KEYFRAME_META, {"ws": workspace, "serial": serial}).first()
        if meta is None:
            raise StoredBodyError(
                f"keyframe {serial} of {workspace!r} is missing: the versions stored against "
                "it cannot be read"
            )
        cached = self.keyframe_cache.get(workspace, serial, meta.sha256)
        if cached is not None:
            return cached, meta.sha256
        what = f"keyframe {serial} of {workspace!r}"
        k = schema.keyframes
        stored = self._read_body(
            conn,
            k,
            sa.and_(k.c.workspace == workspace, k.c.serial == serial),
            int(meta.stored_size),
        )
        compressed = self.cipher.decrypt(
            meta.nonce, stored, codec.keyframe_aad(workspace), meta.key_id
        )
        del stored
        plain = codec.decompress(compressed, int(meta.size), what)
        del compressed
        check_sha(plain, meta.sha256, what)
        return plain, meta.sha256

    def read_keyframe(self, conn: Connection, workspace: str, serial: int) -> Keyframe:
        """Keyframe ``serial`` of ``workspace`` as a zstd dictionary (cached)."""
        found, sha = self._keyframe_or_plaintext(conn, workspace, serial)
        if isinstance(found, Keyframe):
            return found
        keyframe = Keyframe(workspace, serial, sha, found)
        self.keyframe_cache.put(keyframe)
        return keyframe

    def _keyframe_plaintext(self, conn: Connection, workspace: str, serial: int) -> bytes:
        # A big keyframe is never made a dictionary (zstd copies it): its plaintext is
        # returned as decoded, so reading it holds the state once.
        found, sha = self._keyframe_or_plaintext(conn, workspace, serial)
        if isinstance(found, Keyframe):
            return found.plaintext
        if len(found) <= codec.DELTA_MAX_BYTES:
            self.keyframe_cache.put(Keyframe(workspace, serial, sha, found))
        return found

    def version_body(self, conn: Connection, row: Any) -> bytes | bytearray:
        """The stored body of version ``row`` (a ``VERSION_HEAD`` row)."""
        v = schema.versions
        return self._read_body(conn, v, v.c.id == row.id, int(row.stored_len))

    def decode_version(self, conn: Connection, row: Any) -> bytes:
        """The plaintext of version ``row`` (a ``VERSION_HEAD`` row), sha256 checked."""
        workspace, serial = row.workspace, int(row.serial)
        what = f"version {serial} of {workspace!r}"
        if row.codec == codec.RAW:
            stored = self.version_body(conn, row)
            plain = self.cipher.decrypt(row.nonce, stored, workspace, row.key_id)
            del stored
        elif row.codec == codec.KEYFRAME:
            plain = self._keyframe_plaintext(conn, workspace, int(row.base_serial))
        elif row.codec == codec.DELTA:
            keyframe = self.read_keyframe(conn, workspace, int(row.base_serial))
            stored = self.version_body(conn, row)
            delta = self.cipher.decrypt(row.nonce, stored, codec.delta_aad(workspace), row.key_id)
            plain = keyframe.decompress(delta, int(row.size), what)
        else:
            raise StoredBodyError(f"{what}: unknown codec {row.codec!r}")
        check_sha(plain, row.sha256, what)
        return plain

    def _body(self, conn: Connection, workspace: str, serial: int) -> tuple[VersionRecord, bytes]:
        row = conn.execute(_VERSION_ROW, {"ws": workspace, "serial": serial}).first()
        if row is None:
            raise NotFound(f"workspace {workspace!r} has no version with serial {serial}")
        return version_from_row(row), self.decode_version(conn, row)

    def latest_state(self, workspace: str) -> tuple[VersionRecord, bytes] | None:
        # On PostgreSQL each statement sees the latest commit: a concurrent write with
        # a retention of 1 can prune the version read here, and its keyframe, between
        # two statements. Then the newer version is the latest: read again.
        for attempt in range(3):
            with self.read_tx() as conn:
                serial = conn.execute(_LATEST_SERIAL, {"ws": workspace}).scalar()
                if serial is None:
                    return None
                try:
                    return self._body(conn, workspace, int(serial))
                except (NotFound, StoredBodyError):
                    still = conn.execute(_LATEST_SERIAL, {"ws": workspace}).scalar()
                    if attempt == 2 or still == serial:
                        raise
        raise AssertionError("unreachable")

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

    # writing -------------------------------------------------------------------

    def _insert_blob_row(
        self, conn: Connection, table: sa.Table, params: dict[str, Any], body: bytes
    ) -> None:
        # A large body on SQLite is inserted as a zeroblob and then written in slices
        # through the blob handle, in the same transaction: bound as a parameter, the
        # sqlite3 module and SQLite would each copy it whole (and the cached statement
        # keeps its copy bound after the insert).
        if self.is_postgres or len(body) <= BLOB_SLICE:
            conn.execute(table.insert(), {**params, "body": body})
            return
        result = conn.execute(table.insert().values(body=sa.func.zeroblob(len(body))), params)
        rowid = result.lastrowid
        assert rowid is not None
        _write_blob(conn, table.name, int(rowid), body)

    def _new_keyframe(
        self,
        conn: Connection,
        workspace: str,
        serial: int,
        sealed: Sealed,
        compressed: bytes,
        now: float,
    ) -> None:
        nonce, stored = self.cipher.encrypt(compressed, codec.keyframe_aad(workspace))
        del compressed
        params = {
            "workspace": workspace,
            "serial": serial,
            "sha256": sealed.sha256,
            "size": sealed.size,
            "stored_size": len(stored),
            "delta_bytes": 0,
            "created_at": now,
            "key_id": self.cipher.key_id,
            "nonce": nonce,
        }
        self._insert_blob_row(conn, schema.keyframes, params, stored)
        if sealed.plaintext is not None:
            self.keyframe_cache.put(Keyframe(workspace, serial, sealed.sha256, sealed.plaintext))

    def encode(
        self, conn: Connection, workspace: str, serial: int, sealed: Sealed, now: float
    ) -> tuple[str, int | None, bytes, bytes]:
        """Store-ready (codec, base_serial, nonce, body) for version ``serial``: a delta
        against the workspace's newest keyframe before it, or a new keyframe (which this
        inserts) when there is none, the state is big, or the keyframe policy says so."""
        plain = sealed.plaintext
        if not self.compress:
            assert plain is not None
            nonce, stored = self.cipher.encrypt(plain, workspace)
            return codec.RAW, None, nonce, stored
        if plain is None:
            assert sealed.compressed is not None
            self._new_keyframe(conn, workspace, serial, sealed, sealed.compressed, now)
            return codec.KEYFRAME, serial, b"", b""
        current = conn.execute(_KEYFRAME_BEFORE, {"ws": workspace, "serial": serial}).first()
        if current is not None:
            keyframe = self.read_keyframe(conn, workspace, int(current.serial))
            delta = keyframe.compress(plain)
            if not codec.needs_new_keyframe(
                int(current.stored_size), int(current.delta_bytes), len(delta)
            ):
                nonce, stored = self.cipher.encrypt(delta, codec.delta_aad(workspace))
                conn.execute(
                    _KEYFRAME_GROWS,
                    {"ws": workspace, "kf": int(current.serial), "grow": len(stored)},
                )
                return codec.DELTA, int(current.serial), nonce, stored
        self._new_keyframe(conn, workspace, serial, sealed, codec.compress_alone(plain), now)
        return codec.KEYFRAME, serial, b"", b""

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
        envelope: EncryptedState | None = None,
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
            scan_pending=findings is None and envelope is None,
            encrypted_by_client=envelope.format if envelope else None,
        )
        if envelope is not None:
            stored_findings = not_scanned(envelope)
        elif findings is None:
            stored_findings = PENDING
        else:
            stored_findings = json.dumps(findings, sort_keys=True)
        kind, base, nonce, stored = self.encode(conn, workspace, record.serial, sealed, now)
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
            "findings": stored_findings,
            "restored_from": restored_from,
            "key_id": self.cipher.key_id,
            "nonce": nonce,
            "codec": kind,
            "base_serial": base,
        }
        self._insert_blob_row(conn, schema.versions, params, stored)
        conn.execute(_WORKSPACE_UPDATED, {"ws": workspace, "now": now})
        if self.retention > 0:
            self._apply_retention(conn, workspace)
        return record

    def _apply_retention(self, conn: Connection, workspace: str) -> None:
        v, k = schema.versions, schema.keyframes
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
        if cutoff is None:
            return
        pruned = conn.execute(v.delete().where(v.c.workspace == workspace, v.c.serial < cutoff))
        if pruned.rowcount:
            # Only keyframes no remaining version is stored against: a kept version's
            # keyframe stays, however old.
            used = sa.select(v.c.id).where(
                v.c.workspace == workspace, v.c.base_serial == k.c.serial
            )
            conn.execute(k.delete().where(k.c.workspace == workspace, ~sa.exists(used)))

    def seal(self, workspace: str, body: bytes) -> Sealed:
        sha = hashlib.sha256(body).hexdigest()
        if self.compress and len(body) > codec.DELTA_MAX_BYTES:
            return Sealed(workspace, sha, len(body), None, codec.compress_alone(body))
        return Sealed(workspace, sha, len(body), body, None)

    def write_state(
        self,
        workspace: str,
        body: bytes | Sealed,
        state: TfState | EncryptedState,
        actor: Actor,
        *,
        lock_id: str | None,
        findings: list[dict[str, Any]] | None,
    ) -> tuple[VersionRecord, bool]:
        """Store ``body`` as a new version if the writer holds the lock (fencing) and
        the serial/lineage rules allow it. Returns (version, created); a retry of the
        exact latest body is accepted without a new version. ``findings`` None marks
        the secret scan as pending (see :meth:`set_findings`).

        An OpenTofu encrypted envelope (``EncryptedState``) is locked and fenced the
        same way, but its serial and lineage cannot be read: it becomes serial latest +
        1, the rules are skipped (the version says so) and it is not scanned."""
        now = time.time()
        sealed = body if isinstance(body, Sealed) else self.seal(workspace, body)
        del body
        if sealed.workspace != workspace:
            raise ValueError("sealed for another workspace")
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
                if isinstance(state, EncryptedState):
                    if latest is not None and latest.sha256 == sha:
                        return latest, False
                    envelope: EncryptedState | None = state
                    state = TfState(0, "", latest.serial + 1 if latest else 1, "", 0, {})
                else:
                    envelope = None
                if (
                    envelope is None
                    and latest is not None
                    and latest.serial == state.serial
                    and latest.lineage == state.lineage
                    and latest.sha256 == sha
                ):
                    return latest, False
                if envelope is None:
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
                    envelope=envelope,
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
                        "findings": None if findings is None or envelope else len(findings),
                        **({"format": envelope.format} if envelope else {}),
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
                    "serial": getattr(state, "serial", None),
                    "lineage": getattr(state, "lineage", None),
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
                envelope: EncryptedState | None = None
                if old.encrypted_by_client:
                    # Opaque: written back byte for byte under the server's next number.
                    parsed = parse_body(body)
                    assert isinstance(parsed, EncryptedState)
                    envelope, new_body = parsed, body
                    state = TfState(0, "", latest.serial + 1, "", 0, {})
                else:
                    data = json.loads(body)
                    data["serial"] = latest.serial + 1
                    new_body = json.dumps(data, indent=2).encode() + b"\n"
                    found = parse_body(new_body)
                    assert isinstance(found, TfState)
                    state = found
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
                    envelope=envelope,
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

    def delete_workspace(self, workspace: str, actor: Actor) -> int:
        """Delete ``workspace`` with every version, keyframe and drift report it has (for
        scratch workspaces such as ``driftsafe backend check``'s); refused while it is
        locked. Audited. Returns how many versions were deleted."""
        now = time.time()
        w = schema.workspaces
        try:
            with self.write_tx() as conn:
                exists = conn.execute(sa.select(w.c.name).where(w.c.name == workspace)).first()
                if exists is None:
                    raise NotFound(f"no workspace {workspace!r}")
                self.hold_workspace(conn, workspace, now)
                holder = self._lock_row(conn, workspace)
                if holder is not None:
                    raise Conflict(
                        f"{workspace!r} is locked by {holder.who} (lock {holder.id}): "
                        "delete it when no run holds it",
                        detail=holder.lock_info(),
                    )
                v = schema.versions
                count = conn.execute(v.delete().where(v.c.workspace == workspace)).rowcount
                for table in (schema.keyframes, schema.drift_reports, schema.lock_waiters):
                    conn.execute(table.delete().where(table.c.workspace == workspace))
                conn.execute(w.delete().where(w.c.name == workspace))
                self.audit_in(
                    conn, "delete-workspace", workspace, actor, "ok", {"versions": count}, now=now
                )
                return int(count)
        except DriftsafeError as exc:
            if not isinstance(exc, NotFound):
                self.record(
                    "delete-workspace", workspace, actor, "rejected", {"reason": exc.message}
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
