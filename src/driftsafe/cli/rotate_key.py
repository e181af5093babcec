"""``driftsafe rotate-key``: re-encrypt every stored state version with a new key."""

from __future__ import annotations

from pathlib import Path

import click

from driftsafe.cli.common import echo_json, get_settings, handle_errors
from driftsafe.store import rotate_key as rotate_store_key


@click.command("rotate-key")
@click.option("--db", help="Store URL (env DRIFTSAFE_DB).")
@click.option(
    "--new-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Take the new key from this file (base64); created 0600 with a fresh key if absent.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def rotate_key(db: str | None, new_key_file: Path | None, as_json: bool) -> None:
    """Re-encrypt every stored state version with a new key, in one transaction.

    Without --new-key-file the key file in use is replaced (the old key is kept
    beside it as KEYFILE.old). Stop the servers first: they hold the old key.

    \b
    Example:
      driftsafe rotate-key --db sqlite:///var/lib/driftsafe/driftsafe.db
      driftsafe rotate-key --new-key-file /etc/driftsafe/key.new --json
    """
    result = rotate_store_key(get_settings(), db=db, new_key_file=new_key_file)
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(f"re-encrypted {result.versions} versions with key {result.key_id}")
    click.echo(result.message)
