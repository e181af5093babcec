"""``driftsafe lock status|unlock WORKSPACE|DIR``: who holds a state lock, and breaking it
safely. A WORKSPACE is on a driftsafe server; a DIR (a Terraform root) is read through
its own backend (s3 lockfile or DynamoDB, pg, http, local)."""

from __future__ import annotations

from typing import Any

import click

from driftsafe.cli.common import (
    DURATION,
    about_workspace,
    echo_json,
    get_settings,
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


def _root_lock_lines(found: Any, max_age: float) -> list[tuple[str, str]]:
    """Label/value lines for a lock read from a root's own backend."""
    held = found.state.held
    data = held.to_json(max_age=max_age)
    age = data.get("age_seconds")
    lines = [
        ("ID", str(data.get("id") or "-")),
        ("Who", str(data.get("who") or "-")),
        ("Operation", str(data.get("operation") or "-")),
        ("Info", str(data.get("info") or "-")),
        ("Version", str(data.get("version") or "-")),
        ("Created", str(data.get("created") or "-")),
        ("Path", str(data.get("path") or "-")),
        ("Age", format_duration(float(age)) if isinstance(age, int | float) else "unknown"),
        ("Stale", {True: "yes", False: "no", None: "unknown"}[data.get("stale")]),
    ]
    lines += [
        (key.replace("_", " ").capitalize(), str(value))
        for key, value in held.facts.items()
        if not isinstance(value, dict)
    ]
    return lines


def _root_status(directory: str, max_age: float | None, as_json: bool) -> None:
    from driftsafe.backends import root_lock

    stale_after = get_settings().lock_stale_after if max_age is None else max_age
    found = root_lock(directory)
    if as_json:
        echo_json(found.to_json(max_age=stale_after))
        return
    state = found.state
    where = f"{directory} ({found.description}, workspace {state.workspace})"
    if state.held is None:
        click.echo(f"{where}: not locked")
    else:
        stale = state.held.to_json(max_age=stale_after).get("stale")
        click.echo(f"{where}: locked" + (" (stale)" if stale else ""))
        if state.records_holder:
            for label, value in _root_lock_lines(found, stale_after):
                click.echo(f"  {label + ':':<11}{value}")
        else:
            for key, value in state.held.facts.items():
                click.echo(f"  {key.replace('_', ' ')}: {value}")
    click.echo(f"  Entry:     {state.where}")
    if state.note:
        click.echo(f"Note: {state.note}")


def _root_unlock(directory: str, if_stale: bool, max_age: float | None, as_json: bool) -> None:
    from driftsafe.backends import unlock_root

    stale_after = get_settings().lock_stale_after if max_age is None else max_age
    found, released = unlock_root(directory, if_stale=if_stale, max_age=stale_after)
    if as_json:
        echo_json(
            {
                "root": str(found.root),
                "workspace": found.state.workspace,
                "released": released.lock.to_json(max_age=stale_after),
                "how": released.how,
                "warning": released.warning,
            }
        )
        return
    click.echo(f"{directory}: released lock {released.lock.id} ({released.how})")
    for label, value in _root_lock_lines(found, stale_after):
        click.echo(f"  {label + ':':<11}{value}")
    click.echo(released.warning[:1].upper() + released.warning[1:] + ".")


@click.group()
def lock() -> None:
    """Inspect and (safely) break state locks: a driftsafe server's WORKSPACE, or the
    backend of a Terraform root DIR (s3 with use_lockfile or DynamoDB, pg, http, local).

    \b
    Example:
      driftsafe lock status lab/staging
      driftsafe lock unlock lab/staging --if-stale --max-age 10m
      driftsafe lock status envs/prod          # a root on its own backend (e.g. s3)
    """


@lock.command()
@click.argument("workspace", metavar="WORKSPACE|DIR")
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

    DIR (a directory with .tf files) is read through its own backend instead: the
    .tflock object (s3 use_lockfile), the DynamoDB lock item, the driftsafe server,
    the local lock file. The pg backend records no holder, and this says so.

    Exit 0 locked or not; 1 when the server has no such workspace.

    \b
    Example:
      driftsafe lock status lab/staging
      driftsafe lock status lab/staging --max-age 5m --json
      driftsafe lock status envs/prod
    """
    from driftsafe.backends import is_root_dir

    if is_root_dir(workspace):
        _root_status(workspace, max_age, as_json)
        return
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
@click.argument("workspace", metavar="WORKSPACE|DIR")
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

    DIR (a directory with .tf files) is unlocked through its own backend: the s3
    .tflock object or DynamoDB item is deleted. S3 does not fence, so make sure the
    holder is dead. A pg lock cannot be broken this way (it records no holder).

    Exit 0 only when a lock was released; 1 when nothing was (the workspace is not
    locked, the lock is younger than --max-age, or there is no such workspace), as
    `terraform force-unlock` fails on a state that is not locked.

    \b
    Example:
      driftsafe lock unlock lab/staging --if-stale --max-age 10m
      driftsafe lock unlock lab/staging            # break it now, whoever holds it
      driftsafe lock unlock envs/prod --if-stale --max-age 30m
    """
    from driftsafe.backends import is_root_dir

    if max_age is not None and not if_stale:
        raise ConfigError("--max-age only applies with --if-stale")
    if is_root_dir(workspace):
        _root_unlock(workspace, if_stale, max_age, as_json)
        return
    with server_client(server, token) as client, about_workspace(client, workspace):
        released = client.force_unlock(workspace, if_stale=if_stale, max_age=max_age)
    if as_json:
        echo_json({"workspace": workspace, "released": released})
        return
    click.echo(f"{workspace}: released lock {released.get('id', '')}")
    _echo_lock(released)
    click.echo("Re-plan before applying: the previous holder's writes are now rejected.")
