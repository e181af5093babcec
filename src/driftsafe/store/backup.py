"""Backups and integrity checks of a store: ``driftsafe store backup`` and ``verify``.

A backup copies the database as it is, encrypted: it needs no key, and it is useless
without the key, which is kept apart (back the key file up separately).

- SQLite: SQLite's online backup API, in one step, under one read transaction: a
  consistent snapshot while servers keep writing (WAL lets them), written to a temp
  file beside PATH, checked with ``PRAGMA quick_check``, synced, then renamed into
  place, so PATH is never a half-written backup.
- PostgreSQL: ``pg_dump --format=custom`` of the store's schema (pg_dump reads in one
  repeatable-read snapshot), the same temp-then-rename. Restore with ``pg_restore``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from driftsafe.errors import ConfigError, StoreError
from driftsafe.store.database import libpq_url, normalize_url, sqlite_path


@dataclass(frozen=True)
class BackupResult:
    path: Path
    database: str
    bytes: int
    seconds: float
    restore: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "database": self.database,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "restore": self.restore,
        }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prepare(dest: Path, overwrite: bool) -> Path:
    if dest.is_dir():
        raise ConfigError(f"{dest} is a directory: give the backup file's path")
    if dest.exists() and not overwrite:
        raise ConfigError(f"{dest} exists: choose a new path (or pass --force to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest.with_name(f".{dest.name}.{os.getpid()}.partial")


def _backup_sqlite(source: Path, temp: Path) -> None:
    if not source.exists():
        raise StoreError(f"no store at {source}")
    # Read-only: a backup never creates or changes the source.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(temp)
        try:
            # pages=-1: the whole database in one step, under one read transaction, so
            # the copy is one consistent snapshot (stepwise copies restart on writes).
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the backup failed SQLite's quick_check: {check}")
        finally:
            dst.close()
    finally:
        src.close()


def _search_path_schema(url: str) -> str | None:
    """The schema a store URL puts first on the search path (``options=-csearch_path=``)."""
    query = parse_qs(urlsplit(url).query)
    for option in query.get("options", []):
        for part in unquote(option).split():
            if part.startswith("-csearch_path="):
                return part.split("=", 1)[1].split(",")[0].strip('"') or None
    return None


def _backup_postgres(url: str, temp: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise ConfigError(
            "pg_dump is not on PATH: install the PostgreSQL client tools (the same major "
            "version as the server or newer) to back up a PostgreSQL store"
        )
    argv = [pg_dump, "--format=custom", "--no-owner", f"--file={temp}"]
    schema = _search_path_schema(url)
    if schema is not None:
        argv.append(f"--schema={schema}")
    argv.append(f"--dbname={libpq_url(url)}")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise StoreError(f"pg_dump failed: {proc.stderr.strip()}")


def backup_database(url: str, dest: Path, *, overwrite: bool = False) -> BackupResult:
    """Write a consistent snapshot of the store at ``url`` to ``dest`` while servers
    keep running. No key is needed (nor copied): the backup is as encrypted as the store."""
    url = normalize_url(url)
    dest = dest.absolute()
    temp = _prepare(dest, overwrite)
    started = time.monotonic()
    source = sqlite_path(url)
    try:
        if source is not None:
            _backup_sqlite(source, temp)
            restore = f"copy {dest} to the store's path (with the servers stopped)"
        else:
            _backup_postgres(url, temp)
            restore = f"pg_restore --no-owner --dbname=NEW_DATABASE_URL {dest}"
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, dest)
        _fsync_dir(dest.parent)
    finally:
        temp.unlink(missing_ok=True)
    return BackupResult(
        dest,
        "sqlite" if source is not None else "postgresql",
        dest.stat().st_size,
        time.monotonic() - started,
        restore,
    )
