"""The database behind a store: its URL, its connection pool (a SQLAlchemy ``Engine``,
called ``pool`` here because "engine" is the Terraform runner in driftsafe), and the
transaction helpers every part uses."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from driftsafe.errors import ConfigError, StorageFull, StoreError, StoreUnavailable
from driftsafe.store import schema
from driftsafe.store.codec import KeyframeCache
from driftsafe.store.crypto import Cipher
from driftsafe.store.models import Actor

# How long an SQLite writer waits for another writer before failing.
SQLITE_BUSY_MS = 30_000

# SQLite's SQLITE_FULL, PostgreSQL's disk_full: the database has no space left.
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"


def store_failure(exc: BaseException) -> StoreError:
    """The StoreError a database failure means to the caller: no space left (507), or
    the database unreachable or gone away mid-transaction (503, retry later)."""
    orig = getattr(exc, "orig", None) or exc
    full = (
        getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL
        or getattr(orig, "sqlstate", None) == _PG_DISK_FULL
    )
    if full:
        return StorageFull(
            f"the database's disk is full ({orig}): nothing was written and every stored "
            "version is intact; free space on the database's filesystem, then retry"
        )
    return StoreUnavailable(f"store unavailable: {orig}")


# What the database driver raises for the failures above (a raw sqlite3 error comes
# from blob writes, which go past SQLAlchemy).
_DB_FAILURES = (sa.exc.OperationalError, sa.exc.InterfaceError, sqlite3.OperationalError)

# Built once: statements every write runs (building one costs more than running it).
_WORKSPACE_FOR_UPDATE = (
    sa.select(schema.workspaces.c.name)
    .where(schema.workspaces.c.name == sa.bindparam("ws"))
    .with_for_update()
)
_AUDIT_INSERT = schema.audit.insert()


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` and pick the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return url
    raise ConfigError(f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql://...")


def libpq_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def create_private(path: Path) -> None:
    """Create an SQLite database file 0600 (a directory made for it 0700) before SQLite does:
    it holds the token hashes and the audit log, and SQLite gives the -wal and -shm
    files it makes the database file's mode."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return
    os.close(fd)


def open_pool(url: str) -> Engine:
    url = normalize_url(url)
    path = sqlite_path(url)
    if path is None:
        return sa.create_engine(url, pool_size=10, max_overflow=40, pool_pre_ping=True)
    create_private(path)
    pool = sa.create_engine(url, pool_size=10, max_overflow=40)

    @sa.event.listens_for(pool, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves: the sqlite3 module's implicit transactions would
        # start writers as DEFERRED and let two of them deadlock on upgrade.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        # FULL: a committed state version survives power loss, not only a crash.
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @sa.event.listens_for(pool, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("ds_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return pool


class StoreBase:
    """Connection pool, cipher and the shared helpers; the mixins add the operations."""

    pool: Engine
    cipher: Cipher
    retention: int

    def __init__(self, url: str, cipher: Cipher, *, retention: int = 0) -> None:
        self.url = normalize_url(url)
        self.pool = open_pool(self.url)
        self.cipher = cipher
        self.retention = retention
        self.keyframe_cache = KeyframeCache()
        # False writes versions the way schema 2 did (whole, encrypted, no keyframes):
        # bench/storage.py measures the previous write path with it, in the same run.
        self.compress = True
        self.is_postgres = self.pool.dialect.name == "postgresql"
        self._listeners: list[Callable[[str], None]] = []
        self._listeners_lock = threading.Lock()
        self._sqlite_writer = None if self.is_postgres else threading.Lock()
        # Built once (see sql.py): every write transaction holds its workspace first.
        self._hold_insert = self.insert(schema.workspaces).on_conflict_do_nothing()

    @property
    def database(self) -> str:
        return str(self.pool.dialect.name)

    # transactions -------------------------------------------------------------

    @contextmanager
    def write_tx(self) -> Iterator[Connection]:
        """A transaction that will write: serialized against other writers on SQLite."""
        # SQLite admits one writer; other threads of this process queue on a lock
        # here rather than in SQLite's busy handler, which sleeps with backoff.
        with self._sqlite_writer if self._sqlite_writer is not None else contextlib.nullcontext():
            try:
                with self.pool.connect().execution_options(ds_write=True) as conn, conn.begin():
                    yield conn
            except _DB_FAILURES as exc:
                raise store_failure(exc) from exc

    @contextmanager
    def read_tx(self) -> Iterator[Connection]:
        try:
            with self.pool.connect() as conn, conn.begin():
                yield conn
        except _DB_FAILURES as exc:
            raise store_failure(exc) from exc

    def insert(self, table: sa.Table) -> Any:
        """A dialect insert that supports ``on_conflict_do_nothing``."""
        return postgresql.insert(table) if self.is_postgres else sqlite.insert(table)

    def hold_workspace(self, conn: Connection, workspace: str, now: float) -> None:
        """Serialize writers of one workspace (row lock on PostgreSQL; SQLite's
        BEGIN IMMEDIATE already serializes every writer)."""
        conn.execute(self._hold_insert, {"name": workspace, "created_at": now})
        if self.is_postgres:
            conn.execute(_WORKSPACE_FOR_UPDATE, {"ws": workspace})

    def audit_in(
        self,
        conn: Connection,
        action: str,
        workspace: str | None,
        actor: Actor,
        outcome: str,
        detail: dict[str, Any] | None = None,
        *,
        now: float | None = None,
    ) -> None:
        conn.execute(
            _AUDIT_INSERT,
            {
                "at": time.time() if now is None else now,
                "action": action,
                "workspace": workspace,
                "token": actor.token,
                "remote_addr": actor.remote_addr,
                "outcome": outcome,
                "detail": json.dumps(detail or {}, sort_keys=True),
            },
        )

    def record(
        self,
        action: str,
        workspace: str | None,
        actor: Actor,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one audit event in its own transaction (used for refusals)."""
        with self.write_tx() as conn:
            self.audit_in(conn, action, workspace, actor, outcome, detail)

    # lock-release notifications -----------------------------------------------

    def notify_in(self, conn: Connection, workspace: str) -> None:
        """Tell other server processes (PostgreSQL) that ``workspace`` was released;
        NOTIFY is delivered at commit, so nobody wakes before the release is visible."""
        if self.is_postgres:
            conn.execute(sa.text("SELECT pg_notify('driftsafe_locks', :ws)"), {"ws": workspace})

    def notify_local(self, workspace: str) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback(workspace)
