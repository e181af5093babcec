"""``driftsafe token create|list|rotate|revoke``: tokens live in the store, hashed."""

from __future__ import annotations

import time

import click

from driftsafe.cli.common import (
    DURATION,
    echo_json,
    format_table,
    get_settings,
    handle_errors,
    short_time,
)
from driftsafe.durations import format_duration
from driftsafe.errors import ConfigError
from driftsafe.store import SCOPES, TokenRecord, open_store
from driftsafe.timestamps import rfc3339, rfc3339_or_none

_DB = click.option("--db", help="Store URL: sqlite:///PATH or postgresql://... (env DRIFTSAFE_DB).")


def _created_json(record: TokenRecord, secret: str) -> dict[str, object]:
    return {
        "name": record.name,
        "token": secret,
        "scope": record.scope,
        "workspace": record.workspace,
        "expires_at": rfc3339_or_none(record.expires_at),
    }


def _echo_notices(notices: list[str]) -> None:
    for notice in notices:
        click.echo(notice, err=True)


@click.group("token")
def token() -> None:
    """Create, list, rotate and revoke API/backend tokens (works on the store directly).

    A token's --workspace is a glob over workspace names in which `*` also
    matches `/`: 'myapp/*' covers myapp/prod and myapp/a/b/c alike.

    \b
    Example:
      driftsafe token create admin --scope admin --workspace '*' --json
      driftsafe token create ci --scope write --workspace 'lab/*' --expires 90d
      driftsafe token rotate ci --grace 1h
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
    metavar="GLOB",
    help="Workspaces the token may touch, e.g. 'lab/*' ('*' also matches '/'). Required "
    "for write and admin tokens (give '*' for all); read tokens default to '*'.",
)
@click.option(
    "--expires",
    type=DURATION,
    help="Lifetime, e.g. 30d or 12h: the server refuses the token after it (default: never).",
)
@_DB
@click.option(
    "--json", "as_json", is_flag=True, help="Print {name, token, scope, workspace, expires_at}."
)
@handle_errors
def create(
    name: str,
    scope: str,
    workspace: str | None,
    expires: float | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Create a token and print it once (only its hash is stored).

    A name is taken while its token is not revoked; a revoked token's name can be
    used again.

    \b
    Example:
      driftsafe token create ci --scope write --workspace 'lab/*' --json
      driftsafe token create ops --scope admin --workspace '*' --expires 30d
    """
    if workspace is None:
        if scope != "read":
            article = "an" if scope == "admin" else "a"
            raise ConfigError(
                f"{article} {scope} token needs --workspace: give the workspaces it may change, "
                "e.g. --workspace 'myapp/*', or --workspace '*' for every workspace"
            )
        workspace = "*"
    notices: list[str] = []
    store = open_store(get_settings(), db, notices=notices)
    try:
        record, secret = store.create_token(name, scope, workspace, expires_in=expires)
    finally:
        store.close()
    _echo_notices(notices)
    if as_json:
        echo_json(_created_json(record, secret))
        return
    click.echo(secret)
    expiry = f", expires {rfc3339(record.expires_at)}" if record.expires_at else ""
    click.echo(
        f"token {record.name!r}: scope {record.scope}, workspaces {record.workspace!r}"
        f"{expiry}. It is shown only now; store it in a secret manager.",
        err=True,
    )


@token.command("rotate")
@click.argument("name")
@click.option(
    "--grace",
    type=DURATION,
    default="0s",
    show_default=True,
    help="How long the old secret keeps working, e.g. 1h while CI secrets are "
    "updated (default: it stops at once).",
)
@click.option(
    "--expires",
    type=DURATION,
    help="Lifetime of the new secret (default: the lifetime the old one had, if any).",
)
@_DB
@click.option(
    "--json", "as_json", is_flag=True, help="Print {name, token, scope, workspace, expires_at}."
)
@handle_errors
def rotate(name: str, grace: float, expires: float | None, db: str | None, as_json: bool) -> None:
    """Give token NAME a new secret and print it once; the name, scope and workspace
    glob stay, so TF_HTTP_USERNAME and the token's rights are unchanged.

    The old secret stops working at once, or at the end of --grace: every server
    refuses it from then on. An expired token can be rotated too.

    \b
    Example:
      driftsafe token rotate ci                 # the old secret dies now
      driftsafe token rotate ci --grace 1h      # both work for an hour
    """
    store = open_store(get_settings(), db, create=False)
    try:
        record, secret = store.rotate_token(name, grace=grace, expires_in=expires)
    finally:
        store.close()
    if as_json:
        echo_json({**_created_json(record, secret), "old_secret_valid_for_seconds": grace})
        return
    click.echo(secret)
    old = f"works for {format_duration(grace)} more" if grace > 0 else "no longer works"
    click.echo(
        f"token {record.name!r} rotated: scope {record.scope}, workspaces "
        f"{record.workspace!r}; the old secret {old}. The new one is shown only now.",
        err=True,
    )


@token.command("list")
@_DB
@click.option("--all", "show_all", is_flag=True, help="Also list revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_(db: str | None, show_all: bool, as_json: bool) -> None:
    """List tokens: name, scope, workspace glob, status, expiry and last use (never
    the secrets). Read-only: it creates no store and no key file. A rotated token
    in its grace period shows its old secret as `retiring`. Last use is recorded
    at most once a minute per token, so it is
    accurate to a minute.

    \b
    Example:
      driftsafe token list
      driftsafe token list --all --json
    """
    store = open_store(get_settings(), db, create=False)
    try:
        records = store.list_tokens(include_revoked=show_all)
    finally:
        store.close()
    if as_json:
        echo_json({"tokens": [r.to_json() for r in records]})
        return
    if not records:
        click.echo("no tokens" + ("" if show_all else " (--all also lists revoked ones)"))
        return
    now = time.time()
    rows = []
    for r in records:
        status = r.status(now)
        if status == "retiring" and r.revoked_at is not None:
            status = f"retiring {short_time(rfc3339(r.revoked_at))}"
        elif status == "revoked" and r.revoked_at is not None:
            status = f"revoked {short_time(rfc3339(r.revoked_at))}"
        rows.append(
            [
                r.name,
                r.scope,
                r.workspace,
                status,
                short_time(rfc3339(r.created_at)),
                short_time(rfc3339(r.expires_at)) if r.expires_at else "never",
                short_time(rfc3339(r.last_used_at)) if r.last_used_at else "never",
            ]
        )
    headers = ["NAME", "SCOPE", "WORKSPACES", "STATUS", "CREATED", "EXPIRES", "LAST USED"]
    click.echo(format_table(headers, rows))


@token.command("revoke")
@click.argument("name")
@_DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def revoke(name: str, db: str | None, as_json: bool) -> None:
    """Revoke a token: every server refuses it from its next request (an old secret
    still in a rotation's grace period too). Its name can then be used again.

    \b
    Example:
      driftsafe token revoke ci
    """
    store = open_store(get_settings(), db, create=False)
    try:
        record = store.revoke_token(name)
    finally:
        store.close()
    if as_json:
        echo_json(record.to_json())
        return
    click.echo(f"revoked token {record.name!r}")
