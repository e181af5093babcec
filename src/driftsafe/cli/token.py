"""``driftsafe token create|list|revoke``: tokens live in the store, hashed."""

from __future__ import annotations

import click

from driftsafe.cli.common import echo_json, get_settings, handle_errors
from driftsafe.store import SCOPES, open_store

_DB = click.option("--db", help="Store URL: sqlite:///PATH or postgresql://... (env DRIFTSAFE_DB).")


@click.group("token")
def token() -> None:
    """Create, list and revoke API/backend tokens (works on the store directly).

    \b
    Example:
      driftsafe token create admin --scope admin --json
      driftsafe token create ci --scope write --workspace 'lab/*'
      driftsafe token revoke ci
    """


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(SCOPES),
    default="read",
    show_default=True,
    help="read: fetch state; write: also lock and write; admin: also force-unlock, restore.",
)
@click.option(
    "--workspace",
    default="*",
    show_default=True,
    help="Glob of workspaces the token may touch, e.g. 'lab/*'.",
)
@_DB
@click.option("--json", "as_json", is_flag=True, help="Print {name, token, scope, workspace}.")
@handle_errors
def create(name: str, scope: str, workspace: str, db: str | None, as_json: bool) -> None:
    """Create a token and print it once (only its hash is stored).

    \b
    Example:
      driftsafe token create ci --scope write --workspace 'lab/*' --json
    """
    notices: list[str] = []
    store = open_store(get_settings(), db, notices=notices)
    try:
        record, secret = store.create_token(name, scope, workspace)
    finally:
        store.close()
    for notice in notices:
        click.echo(notice, err=True)
    if as_json:
        echo_json(
            {
                "name": record.name,
                "token": secret,
                "scope": record.scope,
                "workspace": record.workspace,
            }
        )
        return
    click.echo(secret)
    click.echo(
        f"token {record.name!r}: scope {record.scope}, workspaces {record.workspace!r}. "
        "It is shown only now; store it in a secret manager.",
        err=True,
    )


@token.command("list")
@_DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_(db: str | None, as_json: bool) -> None:
    """List tokens (names, scopes, globs; never the secrets).

    \b
    Example:
      driftsafe token list --json
    """
    store = open_store(get_settings(), db)
    try:
        records = store.list_tokens()
    finally:
        store.close()
    if as_json:
        echo_json({"tokens": [r.to_json() for r in records]})
        return
    for r in records:
        state = f"revoked {r.to_json()['revoked_at']}" if r.revoked_at else "active"
        click.echo(f"{r.name}\t{r.scope}\t{r.workspace}\t{state}")


@token.command("revoke")
@click.argument("name")
@_DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def revoke(name: str, db: str | None, as_json: bool) -> None:
    """Revoke a token: every server refuses it from its next request.

    \b
    Example:
      driftsafe token revoke ci
    """
    store = open_store(get_settings(), db)
    try:
        record = store.revoke_token(name)
    finally:
        store.close()
    if as_json:
        echo_json(record.to_json())
        return
    click.echo(f"revoked token {record.name!r}")
