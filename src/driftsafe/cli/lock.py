"""``driftsafe lock status|unlock WORKSPACE``: who holds a state lock, and breaking it safely."""

from __future__ import annotations

from typing import Any

import click

from driftsafe.cli.common import (
    DURATION,
    about_workspace,
    echo_json,
    handle_errors,
    server_client,
    server_options,
    short_time,
)
from driftsafe.durations import format_duration
from driftsafe.errors import ConfigError


def describe_lock(lock: dict[str, Any]) -> list[tuple[str, str]]:
    """Label/value lines for a held lock, in the order Terraform prints LockInfo."""
    age = lock.get("age_seconds")
    age_text = format_duration(float(age)) if isinstance(age, int | float) else "?"
    stale = "yes" if lock.get("stale") else "no"
    return [
        ("ID", str(lock.get("id", ""))),
        ("Who", str(lock.get("who") or "-")),
        ("Operation", str(lock.get("operation") or "-")),
        ("Info", str(lock.get("info") or "-")),
        ("Version", str(lock.get("version") or "-")),
        ("Created", short_time(lock.get("created")) or "-"),
        ("Path", str(lock.get("path") or "-")),
        ("Token", str(lock.get("token") or "-")),
        ("From", str(lock.get("remote_addr") or "-")),
        ("Acquired", short_time(lock.get("acquired_at")) or "-"),
        ("Age", age_text),
        ("Stale", stale),
    ]


def _echo_lock(lock: dict[str, Any]) -> None:
    for label, value in describe_lock(lock):
        click.echo(f"  {label + ':':<11}{value}")


@click.group()
def lock() -> None:
    """Inspect and (safely) break the state locks of a driftsafe server.

    \b
    Example:
      driftsafe lock status lab/staging
      driftsafe lock unlock lab/staging --if-stale --max-age 10m
    """


@lock.command()
@click.argument("workspace")
@click.option(
    "--max-age", type=DURATION, help="Count the lock stale past this age (default: server's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the lock status as JSON.")
@server_options
@handle_errors
def status(
    workspace: str, max_age: float | None, as_json: bool, server: str | None, token: str | None
) -> None:
    """Show who holds WORKSPACE's lock, for what, since when, and whether it is stale.

    Exit 0 locked or not; 1 when the server has no such workspace.

    \b
    Example:
      driftsafe lock status lab/staging
      driftsafe lock status lab/staging --max-age 5m --json
    """
    with server_client(server, token) as client:
        answer = client.lock_status(workspace, max_age=max_age)
        if not answer.get("locked"):
            client.require_workspace(workspace)  # exit 1 when there is no such workspace
    if as_json:
        echo_json(answer)
        return
    held = answer.get("lock")
    if not answer.get("locked") or not held:
        click.echo(f"{workspace}: not locked")
        return
    click.echo(f"{workspace}: locked" + (" (stale)" if held.get("stale") else ""))
    _echo_lock(held)


@lock.command()
@click.argument("workspace")
@click.option(
    "--if-stale", is_flag=True, help="Only break a lock older than --max-age; never a fresh one."
)
@click.option(
    "--max-age",
    type=DURATION,
    help="Age that makes a lock stale, e.g. 10m (default: the server's lock_stale_after).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the released lock as JSON.")
@server_options
@handle_errors
def unlock(
    workspace: str,
    if_stale: bool,
    max_age: float | None,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Force-release WORKSPACE's lock (admin token; audited as force-unlock).

    Use --if-stale after a crashed run: the server refuses to break a lock younger
    than --max-age, so a run that is still applying keeps its lock. Without
    --if-stale the lock is broken whatever its age: the holder's next write is then
    rejected (fenced), so re-plan before applying again.

    Exit 0 only when a lock was released; 1 when nothing was (the workspace is not
    locked, the lock is younger than --max-age, or there is no such workspace), as
    `terraform force-unlock` fails on a state that is not locked.

    \b
    Example:
      driftsafe lock unlock lab/staging --if-stale --max-age 10m
      driftsafe lock unlock lab/staging            # break it now, whoever holds it
    """
    if max_age is not None and not if_stale:
        raise ConfigError("--max-age only applies with --if-stale")
    with server_client(server, token) as client, about_workspace(client, workspace):
        released = client.force_unlock(workspace, if_stale=if_stale, max_age=max_age)
    if as_json:
        echo_json({"workspace": workspace, "released": released})
        return
    click.echo(f"{workspace}: released lock {released.get('id', '')}")
    _echo_lock(released)
    click.echo("Re-plan before applying: the previous holder's writes are now rejected.")
