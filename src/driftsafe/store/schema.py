"""Tables and numbered schema migrations (recorded in ``schema_version``).

Migrations only ever add: a store written by an older driftsafe is upgraded in
place on open; a store newer than this code is refused rather than misread.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftsafe.errors import StoreError

metadata = sa.MetaData()

schema_version = sa.Table(
    "ds_schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

meta = sa.Table(
    "ds_meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# ds_tokens as schema 1 created it (names unique for ever); migration 1 always creates
# this shape, migration 3 turns it into the current one.
_tokens_v1 = sa.Table(
    "ds_tokens",
    sa.MetaData(),
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(10), nullable=False),
    sa.Column("workspace", sa.String(500), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

# One row per secret. Since schema 3 a name is unique among the rows not revoked only,
# so a revoked name can be reused, and a rotation adds a row under the same name
# (the old row's ``revoked_at`` is then the end of its grace period, maybe ahead).
tokens = sa.Table(
    "ds_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(10), nullable=False),
    sa.Column("workspace", sa.String(500), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    # Added in schema 3.
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("last_used_at", sa.Float, nullable=True),
    sa.Index(
        "ds_tokens_live_name",
        "name",
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    ),
)

workspaces = sa.Table(
    "ds_workspaces",
    metadata,
    sa.Column("name", sa.String(500), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=True),
)

# ds_versions as schema 1 created it. Migration 1 must always create this shape (later
# migrations alter it), so it lives in its own MetaData, apart from the current table.
_versions_v1 = sa.Table(
    "ds_versions",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(500), nullable=False),
    sa.Column("serial", sa.BigInteger, nullable=False),
    sa.Column("lineage", sa.String(100), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("resources", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("writer_token", sa.String(200), nullable=True),
    sa.Column("writer_who", sa.String(500), nullable=True),
    sa.Column("lock_id", sa.String(100), nullable=True),
    sa.Column("findings", sa.Text, nullable=False),
    sa.Column("restored_from", sa.BigInteger, nullable=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("workspace", "serial", name="ds_versions_ws_serial"),
)

versions = sa.Table(
    "ds_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(500), nullable=False),
    sa.Column("serial", sa.BigInteger, nullable=False),
    sa.Column("lineage", sa.String(100), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("resources", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("writer_token", sa.String(200), nullable=True),
    sa.Column("writer_who", sa.String(500), nullable=True),
    sa.Column("lock_id", sa.String(100), nullable=True),
    sa.Column("findings", sa.Text, nullable=False),
    sa.Column("restored_from", sa.BigInteger, nullable=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    # Added in schema 6 (so after ``body``: reading them walks the row; the meta
    # queries never select them). ``codec`` says how ``body`` decodes (store/codec.py);
    # ``base_serial`` names the keyframe a delta or keyframe version needs.
    sa.Column("codec", sa.String(16), nullable=False, server_default="raw"),
    sa.Column("base_serial", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("workspace", "serial", name="ds_versions_ws_serial"),
    sa.Index("ds_versions_base", "workspace", "base_serial"),
)

locks = sa.Table(
    "ds_locks",
    metadata,
    sa.Column("workspace", sa.String(500), primary_key=True),
    sa.Column("id", sa.String(100), nullable=False),
    sa.Column("operation", sa.String(100), nullable=False),
    sa.Column("who", sa.String(500), nullable=False),
    sa.Column("info", sa.Text, nullable=False),
    sa.Column("version", sa.String(50), nullable=False),
    sa.Column("created", sa.String(100), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("token", sa.String(200), nullable=True),
    sa.Column("remote_addr", sa.String(100), nullable=True),
    sa.Column("acquired_at", sa.Float, nullable=False),
)

audit = sa.Table(
    "ds_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("workspace", sa.String(500), nullable=True),
    sa.Column("token", sa.String(200), nullable=True),
    sa.Column("remote_addr", sa.String(100), nullable=True),
    sa.Column("outcome", sa.String(50), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ds_audit_ws", "workspace", "id"),
)

# Added in schema 2.
lock_waiters = sa.Table(
    "ds_lock_waiters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(500), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ds_waiters_ws", "workspace", "id"),
)

drift_reports = sa.Table(
    "ds_drift_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(500), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Index("ds_drift_ws", "workspace", "id"),
)


# Added in schema 6: the full states that deltas are compressed against. A keyframe is
# kept while any version names it (``ds_versions.base_serial``), whatever the retention.
keyframes = sa.Table(
    "ds_keyframes",
    metadata,
    sa.Column("workspace", sa.String(500), primary_key=True),
    # The serial of the version whose content this is.
    sa.Column("serial", sa.BigInteger, primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("stored_size", sa.BigInteger, nullable=False),
    # Bytes of the deltas written against this keyframe so far: when they pass the
    # keyframe's own stored size, the next write starts a new keyframe.
    sa.Column("delta_bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

# Added in schema 5 (the web console). A console session: the cookie holds a random
# secret, this table its sha256; it lives here so every server on one PostgreSQL
# shares it, and it dies with its token.
ui_sessions = sa.Table(
    "ds_ui_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("token_id", sa.String(32), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
    sa.Column("remote_addr", sa.String(100), nullable=True),
    sa.Index("ds_ui_sessions_seen", "seen_at"),
)

# Added in schema 5: what a version changed against the one before it, and which
# Terraform wrote it, computed once (from the bodies) the first time a page needs it,
# so listing versions never decodes a state.
version_info = sa.Table(
    "ds_version_info",
    metadata,
    sa.Column("workspace", sa.String(500), primary_key=True),
    sa.Column("serial", sa.BigInteger, primary_key=True),
    sa.Column("terraform_version", sa.String(50), nullable=False),
    sa.Column("added", sa.Integer, nullable=False),
    sa.Column("changed", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=False),
    # The serial compared against (None: the first version kept).
    sa.Column("previous", sa.BigInteger, nullable=True),
    sa.Column("computed_at", sa.Float, nullable=False),
)

# Added in schema 5: the console's audit filters (newest first within each). Plain
# DDL: declared on the table, migration 1 would create them already.
_AUDIT_INDEXES = (
    "CREATE INDEX ds_audit_action ON ds_audit (action, id)",
    "CREATE INDEX ds_audit_token ON ds_audit (token, id)",
    "CREATE INDEX ds_audit_at ON ds_audit (at)",
)

# The ds_meta key that records the progress of the schema 6 re-encoding of versions
# written before it (store/recode.py); absent once every old version is re-encoded.
RECODE_KEY = "recode_v6"


# Table.create also creates the table's indexes.
def _v1(conn: Connection) -> None:
    for table in (meta, _tokens_v1, workspaces, _versions_v1, locks, audit):
        table.create(conn)


def _v2(conn: Connection) -> None:
    lock_waiters.create(conn)
    drift_reports.create(conn)


def _v3(conn: Connection) -> None:
    """Tokens: an expiry, the time of last use, and names unique among live tokens
    only (a revoked name can be reused; a rotation keeps the name)."""
    t = tokens.name
    if conn.dialect.name == "sqlite":
        # SQLite cannot drop a UNIQUE constraint: rebuild the table (it is small).
        conn.execute(sa.text(f"ALTER TABLE {t} RENAME TO {t}_v1"))
        tokens.create(conn)
        columns = "id, name, hash, scope, workspace, created_at, revoked_at"
        conn.execute(sa.text(f"INSERT INTO {t} ({columns}) SELECT {columns} FROM {t}_v1"))
        conn.execute(sa.text(f"DROP TABLE {t}_v1"))
        return
    for unique in sa.inspect(conn).get_unique_constraints(t):
        if unique["column_names"] == ["name"] and unique["name"]:
            conn.execute(sa.text(f'ALTER TABLE {t} DROP CONSTRAINT "{unique["name"]}"'))
    conn.execute(sa.text(f"ALTER TABLE {t} ADD COLUMN expires_at DOUBLE PRECISION"))
    conn.execute(sa.text(f"ALTER TABLE {t} ADD COLUMN last_used_at DOUBLE PRECISION"))
    for index in tokens.indexes:
        index.create(conn)


def _v5(conn: Connection) -> None:
    ui_sessions.create(conn)
    version_info.create(conn)
    for ddl in _AUDIT_INDEXES:
        conn.execute(sa.text(ddl))


def _v6(conn: Connection) -> None:
    """Versions stored compressed (zstd) against keyframes. Rows written before stay
    readable as they are (``codec`` 'raw') and are re-encoded afterwards in batches,
    each its own transaction, from the progress recorded under ``RECODE_KEY``: an
    interrupted re-encoding resumes on the next open. Recording 6 here, before any
    row is re-encoded, makes an older driftsafe refuse the store instead of misreading
    (or pruning) it."""
    v = versions.name
    conn.execute(sa.text(f"ALTER TABLE {v} ADD COLUMN codec VARCHAR(16) NOT NULL DEFAULT 'raw'"))
    conn.execute(sa.text(f"ALTER TABLE {v} ADD COLUMN base_serial BIGINT"))
    for index in versions.indexes:
        index.create(conn)
    keyframes.create(conn)
    if conn.dialect.name == "postgresql":
        # Ciphertext never compresses: spare PostgreSQL trying (and keep substring()
        # reads of a big body cheap: EXTERNAL values are sliced without decompressing).
        for table in (v, keyframes.name):
            conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN body SET STORAGE EXTERNAL"))
    upto = conn.execute(sa.select(sa.func.max(versions.c.id))).scalar()
    if upto is not None:
        progress = json.dumps({"upto_id": int(upto), "after_id": 0, "done": 0, "skipped": []})
        conn.execute(meta.insert().values(key=RECODE_KEY, value=progress))


# Numbers may have gaps: each branch of the project owns its own numbers.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1),
    (2, _v2),
    (3, _v3),
    (5, _v5),
    (6, _v6),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    value = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    return int(value or 0)


def migrate(conn: Connection, *, now: float, target: int = LATEST) -> list[int]:
    """Apply the missing migrations up to ``target`` inside the caller's transaction."""
    have = current_version(conn)
    if have > LATEST:
        raise StoreError(
            f"the store has schema version {have}, newer than this driftsafe knows "
            f"({LATEST}): upgrade driftsafe"
        )
    if have == 0:
        schema_version.create(conn, checkfirst=True)
    # Every migration not recorded yet, not only those above the highest recorded:
    # numbers are owned by parallel branches, so one may land below a number a store
    # already has (a gap filled later).
    done = set(conn.execute(sa.select(schema_version.c.version)).scalars())
    applied = []
    for number, step in MIGRATIONS:
        if number not in done and number <= target:
            step(conn)
            conn.execute(schema_version.insert().values(version=number, applied_at=now))
            applied.append(number)
    return applied
