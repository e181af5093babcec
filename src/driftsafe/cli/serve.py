"""``driftsafe serve`` (the state server) and ``driftsafe rotate-key``."""

from __future__ import annotations

from pathlib import Path

import click

from driftsafe.cli.common import echo_json, get_settings, handle_errors
from driftsafe.errors import ConfigError
from driftsafe.server.serving import serve as run_server
from driftsafe.store.rotate import rotate_key as rotate_store_key


@click.command("serve")
@click.option("--db", help="Store URL: sqlite:///PATH or postgresql://... (env DRIFTSAFE_DB).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8787, show_default=True, type=int, help="Port (0: any free port).")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Accept requests without a token (loopback bind only; for local experiments).",
)
@click.option(
    "--tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="TLS certificate (PEM)."
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="TLS private key (PEM)."
)
@handle_errors
def serve(
    db: str | None,
    host: str,
    port: int,
    insecure_no_auth: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run the state server: Terraform's http backend with versions, locks and tokens.

    Prints `driftsafe serve: listening on URL` on stderr once it accepts connections.

    \b
    Example:
      driftsafe token create ci --scope write --workspace 'lab/*'
      driftsafe serve --db postgresql://driftsafe@db/driftsafe --host 0.0.0.0 \\
          --tls-cert cert.pem --tls-key key.pem
    """
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    run_server(
        get_settings(),
        db=db,
        host=host,
        port=port,
        insecure_no_auth=insecure_no_auth,
        tls=tls,
        announce=lambda line: click.echo(line, err=True),
    )


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
