"""``driftsafe audit``: the server's audit log of locks, writes, restores and auth failures."""

from __future__ import annotations

import json

import click

from driftsafe.cli.common import (
    echo_json,
    format_table,
    handle_errors,
    server_client,
    server_options,
    short_time,
)


def _detail(value: object) -> str:
    if value in (None, "", {}):
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


@click.command()
@click.option("--workspace", "-w", metavar="WS", help="Only events of this workspace.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Newest N events.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
@server_options
@handle_errors
def audit(
    workspace: str | None, limit: int, as_json: bool, server: str | None, token: str | None
) -> None:
    """Show the audit log, newest first: lock, unlock, force-unlock, write,
    rejected write, restore and auth failures.

    \b
    Example:
      driftsafe audit --workspace lab/staging --limit 20
      driftsafe audit --json | jq '.events[] | select(.action == "force-unlock")'
    """
    with server_client(server, token) as client:
        events = client.audit(workspace=workspace, limit=limit)
    if as_json:
        echo_json({"events": events})
        return
    if not events:
        click.echo("no audit events")
        return
    rows = [
        [
            short_time(e.get("at")),
            e.get("action"),
            e.get("workspace") or "-",
            e.get("token") or "-",
            e.get("remote_addr") or "-",
            e.get("outcome"),
            _detail(e.get("detail")),
        ]
        for e in events
    ]
    click.echo(
        format_table(["AT", "ACTION", "WORKSPACE", "TOKEN", "FROM", "OUTCOME", "DETAIL"], rows)
    )
