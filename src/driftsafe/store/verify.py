"""``driftsafe store verify``: read every stored row back and say what does not.

Every version is decoded (decrypted, decompressed against its keyframe) and its
sha256 compared with the recorded one; every keyframe likewise; every lock, token,
audit event and drift report is read back and checked for the fields the server
relies on. A problem names its row. Nothing is written.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftsafe.errors import StoreError
from driftsafe.settings import Settings
from driftsafe.store import schema
from driftsafe.store.crypto import load_cipher
from driftsafe.store.locks import lock_from_row
from driftsafe.store.models import SCOPES
from driftsafe.store.opener import default_key_file
from driftsafe.store.recode import recode_progress
from driftsafe.store.sql import SqlStore
from driftsafe.store.versions import VERSION_HEAD

_HEX64 = re.compile(r"[0-9a-f]{64}")
# Rows read per query when walking a table that may be large.
_PAGE = 500


@dataclass(frozen=True)
class Problem:
    kind: str  # version, keyframe, lock, token, audit, drift-report, database
    name: str  # the row: "WORKSPACE@SERIAL", a token's name, an audit id...
    message: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "message": self.message}


@dataclass
class VerifyReport:
    database: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    reencoding_pending: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "database": self.database,
            "counts": dict(self.counts),
            "problems": [p.to_json() for p in self.problems],
            "reencoding_pending": self.reencoding_pending,
        }


def _pages(conn: Connection, table: sa.Table, key: sa.Column[Any]) -> Iterator[Any]:
    """Every row of ``table`` in ``key`` order, a page at a time."""
    last: Any = None
    while True:
        query = sa.select(table).order_by(key).limit(_PAGE)
        if last is not None:
            query = query.where(key > last)
        rows = conn.execute(query).all()
        yield from rows
        if len(rows) < _PAGE:
            return
        last = getattr(rows[-1], key.name)


def _check_versions(store: SqlStore, report: VerifyReport, progress: Callable[[str], None]) -> None:
    v, k = schema.versions, schema.keyframes
    with store.read_tx() as conn:
        frames = conn.execute(sa.select(k.c.workspace, k.c.serial).order_by(k.c.workspace)).all()
        ids = conn.execute(sa.select(v.c.id).order_by(v.c.id)).scalars().all()
    store.keyframe_cache.clear()  # read every keyframe from the database, not memory
    for workspace, serial in frames:
        try:
            with store.read_tx() as conn:
                store.read_keyframe(conn, workspace, int(serial))
        except StoreError as exc:
            report.problems.append(Problem("keyframe", f"{workspace}@{serial}", exc.message))
    report.counts["keyframes"] = len(frames)
    checked = 0
    for n, row_id in enumerate(ids, start=1):
        with store.read_tx() as conn:
            row = conn.execute(VERSION_HEAD.where(v.c.id == row_id)).first()
            if row is None:
                continue  # pruned by retention since the listing
            try:
                store.decode_version(conn, row)
            except StoreError as exc:
                name = f"{row.workspace}@{row.serial}"
                report.problems.append(Problem("version", name, exc.message))
        checked += 1
        if n % 1000 == 0:
            progress(f"verified {n} of {len(ids)} versions")
    report.counts["versions"] = checked


def _check_locks(conn: Connection, report: VerifyReport) -> None:
    count = 0
    for row in _pages(conn, schema.locks, schema.locks.c.workspace):
        count += 1
        try:
            lock = lock_from_row(row)
            if not lock.id or not isinstance(lock.acquired_at, float | int):
                raise ValueError("no lock ID or acquisition time")
            lock.lock_info()
        except (ValueError, TypeError) as exc:
            report.problems.append(Problem("lock", str(row.workspace), str(exc)))
    report.counts["locks"] = count


def _check_tokens(conn: Connection, report: VerifyReport) -> None:
    count = 0
    for row in _pages(conn, schema.tokens, schema.tokens.c.id):
        count += 1
        wrong = []
        if not isinstance(row.hash, str) or not _HEX64.fullmatch(row.hash):
            wrong.append("its hash is not a sha256")
        if row.scope not in SCOPES:
            wrong.append(f"unknown scope {row.scope!r}")
        if not row.name or not row.workspace:
            wrong.append("no name or workspace glob")
        if wrong:
            report.problems.append(Problem("token", str(row.name or row.id), "; ".join(wrong)))
    report.counts["tokens"] = count


def _check_json_rows(
    conn: Connection, report: VerifyReport, table: sa.Table, kind: str, column: str, label: str
) -> None:
    count = 0
    for row in _pages(conn, table, table.c.id):
        count += 1
        try:
            value = json.loads(getattr(row, column))
            if not isinstance(value, dict):
                raise ValueError(f"{column} is not a JSON object")
        except (ValueError, TypeError) as exc:
            report.problems.append(Problem(kind, str(row.id), str(exc)))
    report.counts[label] = count


def _check_database(store: SqlStore, report: VerifyReport) -> None:
    if store.is_postgres:
        return  # PostgreSQL checks its pages itself (checksums, when enabled)
    with store.pool.connect() as conn:
        dbapi = conn.connection.driver_connection
        assert isinstance(dbapi, sqlite3.Connection)
        result = [row[0] for row in dbapi.execute("PRAGMA quick_check").fetchall()]
    if result != ["ok"]:
        report.problems.append(Problem("database", "sqlite", "; ".join(result[:20])))


def _check_key(store: SqlStore) -> None:
    """The configured key opens this store (the key check row decrypts)."""
    with store.read_tx() as conn:
        value = conn.execute(
            sa.select(schema.meta.c.value).where(schema.meta.c.key == "key_check")
        ).scalar()
    if value is None:
        raise StoreError("the store has no key check row: not an initialized driftsafe store")
    stored = json.loads(value)
    store.cipher.decrypt(
        bytes.fromhex(stored["nonce"]), bytes.fromhex(stored["data"]), "key_check", stored["key_id"]
    )


def verify_store(store: SqlStore, *, progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Check ``store`` row by row. Raises StoreError when it cannot be checked at all
    (another schema version, the wrong key); returns the problems otherwise."""
    have = store.schema_version()
    if have != schema.LATEST:
        raise StoreError(
            f"the store has schema version {have}, this driftsafe checks {schema.LATEST}: "
            "open it once with this driftsafe (e.g. driftsafe serve) to migrate it"
        )
    _check_key(store)
    report = VerifyReport(store.database)
    _check_database(store, report)
    _check_versions(store, report, progress or (lambda _msg: None))
    with store.read_tx() as conn:
        _check_locks(conn, report)
        _check_tokens(conn, report)
        _check_json_rows(conn, report, schema.audit, "audit", "detail", "audit_events")
        _check_json_rows(
            conn, report, schema.drift_reports, "drift-report", "report", "drift_reports"
        )
    report.reencoding_pending = not recode_progress(store).finished
    return report


def verify_database(
    settings: Settings, db: str | None = None, *, progress: Callable[[str], None] | None = None
) -> VerifyReport:
    """Verify the store at ``db`` (or the configured one) with the configured key,
    without migrating or changing it."""
    url = db or settings.db_url
    cipher, _ = load_cipher(
        key=settings.encryption_key, key_file=default_key_file(settings, url), create=False
    )
    store = SqlStore(url, cipher)
    try:
        return verify_store(store, progress=progress)
    finally:
        store.close()
