"""``driftsafe serve``: the state server."""

from __future__ import annotations

from pathlib import Path

import click

from driftsafe.cli.common import get_settings, handle_errors
from driftsafe.errors import ConfigError
from driftsafe.server import serve as run_server


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
    "--allow-plain-http",
    is_flag=True,
    help="Serve plain HTTP on a non-loopback address (behind a proxy that terminates "
    "TLS); without it such a bind needs --tls-cert/--tls-key.",
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
    allow_plain_http: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run the state server: Terraform's http backend with versions, locks and tokens.

    Prints `driftsafe serve: listening on URL` on stderr once it accepts connections.
    A non-loopback address needs TLS (--tls-cert/--tls-key): plain HTTP would send
    every token in clear text. Behind a proxy that terminates TLS, pass
    --allow-plain-http; the server then warns at start and in /healthz.
    The web console is at URL/ui/ (log in with a token; see docs/console.md).

    \b
    Example:
      driftsafe token create ci --scope write --workspace 'lab/*'
      driftsafe serve --db postgresql://driftsafe@db/driftsafe --host 0.0.0.0 \\
          --port 8787 --tls-cert cert.pem --tls-key key.pem
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
        allow_plain_http=allow_plain_http,
        announce=lambda line: click.echo(line, err=True),
    )
