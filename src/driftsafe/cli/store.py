"""``driftsafe store backup|verify``: a consistent snapshot, and an integrity check."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from driftsafe.cli.common import EXIT_CHANGES, EXIT_OK, echo_json, get_settings, handle_errors
from driftsafe.store import backup_database, default_key_file, verify_database


@click.group("store")
def store() -> None:
    """Back up the store and check its integrity.

    \b
    Example:
      driftsafe store backup /backups/driftsafe-$(date +%F).db
      driftsafe store verify --db sqlite:///restored/driftsafe.db
    """


@store.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", help="Store URL (env DRIFTSAFE_DB).")
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def backup(path: Path, db: str | None, force: bool, as_json: bool) -> None:
    """Write a consistent snapshot of the store to PATH while servers keep running.

    SQLite: SQLite's online backup API (one file). PostgreSQL: pg_dump's custom
    format of the store's schema (restore with pg_restore). The backup is as
    encrypted as the store and holds no key: back the key file up separately.

    \b
    Example:
      driftsafe store backup /backups/driftsafe.db
      driftsafe store backup --db postgresql://ds@db/driftsafe /backups/ds.dump --json
    """
    settings = get_settings()
    url = db or settings.db_url
    result = backup_database(url, path, overwrite=force)
    key_file = default_key_file(settings, url)
    key_note = (
        "the key comes from DRIFTSAFE_ENCRYPTION_KEY"
        if settings.encryption_key
        else f"the key is in {key_file}"
    )
    if as_json:
        echo_json({**result.to_json(), "key": key_note})
        return
    click.echo(f"backed up the {result.database} store to {result.path} ({result.bytes} bytes)")
    click.echo(f"restore: {result.restore}")
    click.echo(f"the backup holds no key ({key_note}): keep a copy of the key apart from it")


@store.command("verify")
@click.option("--db", help="Store URL (env DRIFTSAFE_DB).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def verify(db: str | None, as_json: bool) -> None:
    """Check that every version decrypts and matches its sha256, and that every lock,
    token and audit row reads back. Exit 0 when clean, 2 naming each problem, 1 on
    error (no store, wrong key). Nothing is changed.

    \b
    Example:
      driftsafe store verify
      driftsafe store verify --db sqlite:///restored/driftsafe.db --json
    """

    def progress(message: str) -> None:
        if not as_json:
            click.echo(message, err=True)

    report = verify_database(get_settings(), db, progress=progress)
    if as_json:
        echo_json(report.to_json())
    else:
        counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in report.counts.items())
        click.echo(f"checked {counts}")
        for problem in report.problems:
            click.echo(f"{problem.kind} {problem.name}: {problem.message}")
        if report.reencoding_pending:
            click.echo("note: versions from before schema 6 are still being re-encoded")
        click.echo("ok: every row reads back" if report.ok else f"{len(report.problems)} problems")
    sys.exit(EXIT_OK if report.ok else EXIT_CHANGES)
