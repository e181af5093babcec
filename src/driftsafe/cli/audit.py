"""``driftsafe audit``: the server's audit log of locks, writes, restores and auth failures."""

from __future__ import annotations

import json
from typing import Any

import click

from driftsafe.cli.common import (
    echo_json,
    format_table,
    handle_errors,
    server_client,
    server_options,
    short_time,
)

# How far back ``--last`` looks for a refusal.
_LAST_SCAN = 1000


def _detail(value: object) -> str:
    """The whole detail on one line: a refusal's reason is what the user came for
    (Terraform shows only "HTTP error: 409"), so it is never cut."""
    if value in (None, "", {}):
        return ""
    if isinstance(value, dict) and isinstance(value.get("reason"), str):
        rest = {k: v for k, v in value.items() if k != "reason"}
        reason: str = value["reason"]
        return reason + (f"  {json.dumps(rest, sort_keys=True)}" if rest else "")
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _echo_event(event: dict[str, Any]) -> None:
    """One event in full, a field a line, its detail as indented JSON."""
    fields = [
        ("At", event.get("at")),
        ("Action", event.get("action")),
        ("Outcome", event.get("outcome")),
        ("Workspace", event.get("workspace") or "-"),
        ("Token", event.get("token") or "-"),
        ("From", event.get("remote_addr") or "-"),
    ]
    detail = event.get("detail") or {}
    reason = detail.get("reason") if isinstance(detail, dict) else None
    if isinstance(reason, str):
        fields.append(("Reason", reason))
    for label, value in fields:
        click.echo(f"{label + ':':<11}{value}")
    if detail:
        click.echo("Detail:")
        for line in json.dumps(detail, indent=2, sort_keys=True).splitlines():
            click.echo(f"  {line}")


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
@click.option(
    "--last",
    is_flag=True,
    help="Print only the latest refusal (a fenced or rejected write, a refused lock or "
    "unlock, an auth failure) in full: the reason Terraform's 'HTTP error: 409' hides.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
@server_options
@handle_errors
def audit(
    workspace: str | None,
    limit: int,
    last: bool,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Show the audit log, newest first: lock, unlock, force-unlock, write,
    rejected write, restore and auth failures. Times are UTC.

    When Terraform fails with only "HTTP error: 409" (a write refused because its
    lock was broken, a serial or lineage conflict), --last prints why. Exit 1 when
    --workspace names a workspace that does not exist and has no events.

    \b
    Example:
      driftsafe audit --workspace lab/staging --limit 20
      driftsafe audit --workspace lab/staging --last     # why was my write refused?
      driftsafe audit --json | jq '.events[] | select(.action == "force-unlock")'
    """
    with server_client(server, token) as client:
        events = client.audit(workspace=workspace, limit=_LAST_SCAN if last else limit)
        if not events and workspace is not None:
            client.require_workspace(workspace)  # exit 1 when there is no such workspace
    if last:
        refusal = next((e for e in events if e.get("outcome") != "ok"), None)
        if as_json:
            echo_json({"event": refusal})
        elif refusal is None:
            where = f" for {workspace}" if workspace else ""
            click.echo(f"no refusal recorded{where} in the newest {_LAST_SCAN} events")
        else:
            _echo_event(refusal)
        return
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
