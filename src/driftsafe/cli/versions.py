"""``driftsafe state versions|show|diff|restore WORKSPACE``: a server's state versions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from driftsafe.cli.common import (
    EXIT_CHANGES,
    about_workspace,
    echo_json,
    format_table,
    handle_errors,
    human_size,
    server_client,
    server_options,
    short_time,
)
from driftsafe.errors import ConfigError, DriftsafeError
from driftsafe.state import iter_instances


def writer_name(version: dict[str, Any]) -> str:
    writer = version.get("writer") or {}
    token, who = writer.get("token"), writer.get("who")
    return f"{token} ({who})" if token and who else str(token or who or "-")


@click.group()
def state() -> None:
    """Versions of the states a driftsafe server keeps: list, show, diff, restore.

    \b
    Example:
      export DRIFTSAFE_SERVER=http://127.0.0.1:8787 DRIFTSAFE_TOKEN=...
      driftsafe state versions lab/staging
      driftsafe state diff lab/staging 3 4
      driftsafe state restore lab/staging --serial 3
    """


@state.command()
@click.argument("workspace")
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@server_options
@handle_errors
def versions(workspace: str, as_json: bool, server: str | None, token: str | None) -> None:
    """List every stored version of WORKSPACE, newest first (times in UTC).

    Exit 1 when the server has no such workspace.

    \b
    Example:
      driftsafe state versions lab/staging
      driftsafe state versions lab/staging --json | jq '.versions[0].serial'
    """
    with server_client(server, token) as client:
        listed = client.versions(workspace)
        if not listed:
            client.require_workspace(workspace)  # exit 1 when there is no such workspace
    if as_json:
        echo_json({"workspace": workspace, "versions": listed})
        return
    if not listed:
        click.echo(f"{workspace}: no versions yet (the workspace is locked, no state written)")
        return
    rows = [
        [
            v.get("serial"),
            short_time(v.get("created_at")),
            writer_name(v),
            v.get("resources"),
            human_size(v.get("size")),
            str(v.get("sha256", ""))[:12],
            len(v.get("findings") or []),
            "" if v.get("restored_from") is None else f"restored from {v['restored_from']}",
        ]
        for v in listed
    ]
    headers = ["SERIAL", "CREATED", "WRITER", "RESOURCES", "SIZE", "SHA256", "FINDINGS", "NOTE"]
    click.echo(format_table(headers, rows))


@state.command()
@click.argument("workspace")
@click.option("--serial", type=click.IntRange(min=0), help="Version to show (default: latest).")
@click.option("--json", "as_json", is_flag=True, help="Print {version, state} as JSON.")
@click.option("--raw", is_flag=True, help="Print only the tfstate JSON (e.g. to save a copy).")
@server_options
@handle_errors
def show(
    workspace: str,
    serial: int | None,
    as_json: bool,
    raw: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Show one version of WORKSPACE: its metadata and resource addresses.

    \b
    Example:
      driftsafe state show lab/staging
      driftsafe state show lab/staging --serial 3 --raw > staging-3.tfstate
    """
    with server_client(server, token) as client, about_workspace(client, workspace):
        answer = client.version(workspace, serial)
    if raw:
        click.echo(json.dumps(answer["state"], indent=2))
        return
    if as_json:
        echo_json(answer)
        return
    version, tfstate = answer["version"], answer["state"]
    restored = version.get("restored_from")
    facts = [
        ("Workspace", workspace),
        ("Serial", version.get("serial")),
        ("Lineage", version.get("lineage")),
        ("Created", short_time(version.get("created_at"))),
        ("Writer", writer_name(version)),
        ("Lock ID", version.get("lock_id") or "-"),
        ("Size", f"{human_size(version.get('size'))}, sha256 {version.get('sha256')}"),
        ("Terraform", tfstate.get("terraform_version", "?")),
        ("Findings", len(version.get("findings") or [])),
    ]
    if restored is not None:
        facts.append(("Restored from", f"serial {restored}"))
    for label, value in facts:
        click.echo(f"{label + ':':<15}{value}")
    addresses = sorted(address for address, _ in iter_instances(tfstate))
    click.echo(f"\nResources ({len(addresses)}):")
    for address in addresses:
        click.echo(f"  {address}")
    outputs = tfstate.get("outputs") or {}
    if outputs:
        click.echo(f"\nOutputs ({len(outputs)}):")
        for name in sorted(outputs):
            click.echo(f"  {name}" + (" (sensitive)" if outputs[name].get("sensitive") else ""))


def _serial_arg(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise ConfigError(
            f"{name} must be a serial number (or give two state files), got {value!r}"
        )
    return int(value)


def _state_file(path: str) -> bytes:
    """A state file's bytes, once checked to be a state."""
    from driftsafe.state import parse_state

    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        parse_state(body, keep_tree=False)
    except DriftsafeError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
    return body


@state.command()
@click.argument("workspace", metavar="WORKSPACE|OLD_FILE")
@click.argument("from_serial", metavar="FROM|NEW_FILE")
@click.argument("to_serial", metavar="[TO]", required=False)
@click.option(
    "--values", "show_values", is_flag=True, help="Also print each changed value, old -> new."
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole diff as JSON.")
@server_options
@handle_errors
def diff(
    workspace: str,
    from_serial: str,
    to_serial: str | None,
    show_values: bool,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Difference between versions FROM and TO (default: latest), by meaning; or
    between two state files (e.g. two S3 object versions saved with `aws s3api`).

    Lists the addresses added (+), removed (-), replaced (-/+, with the old and new
    id) and changed in place (~), with the attribute paths that changed. Values are
    compared as Terraform means them (a dynamic-type value's type encoding is not a
    change). With --values each path shows old -> new; a value Terraform marks
    sensitive or the secret scan flags is printed as (sensitive), never as itself.
    Exit status: 0 identical, 2 different, 1 error.

    \b
    Example:
      driftsafe state diff lab/staging 3 4
      driftsafe state diff lab/staging 3 --values
      driftsafe state diff lab/staging 3 --json | jq '.replaced'
      driftsafe state diff old.tfstate new.tfstate
    """
    from driftsafe.state import diff_bodies

    if to_serial is None and Path(workspace).is_file() and Path(from_serial).is_file():
        result = diff_bodies(_state_file(workspace), _state_file(from_serial)).to_json()
        text = render_diff(workspace, from_serial, "", result, values=show_values, files=True)
    else:
        first = _serial_arg(from_serial, "FROM")
        last = _serial_arg(to_serial, "TO")
        assert first is not None
        with server_client(server, token) as client, about_workspace(client, workspace):
            if last is None:
                last = client.latest_serial(workspace)
            result = client.diff(workspace, first, last)
        text = render_diff(workspace, first, last, result, values=show_values)
    if as_json:
        echo_json(result)
    else:
        click.echo(text)
    if any(result.get(key) for key in ("added", "removed", "changed", "outputs")):
        sys.exit(EXIT_CHANGES)


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def render_diff(
    workspace: str,
    old: int | str,
    new: int | str,
    result: dict[str, Any],
    *,
    values: bool = False,
    files: bool = False,
) -> str:
    """The diff as a person reads it (the server's JSON, old and new fields). With
    ``files``, ``workspace`` and ``old`` name the two state files compared."""
    added, removed = result.get("added", []), result.get("removed", [])
    changed: dict[str, list[str]] = result.get("changed", {})
    outputs: list[dict[str, Any]] = result.get("outputs", [])
    if files:
        same = f"{workspace} and {old} hold the same resources and outputs."
        heading = f"{workspace} -> {old}"
    else:
        same = f"{workspace}: serial {old} and {new} hold the same resources and outputs."
        heading = f"{workspace}: serial {old} -> {new}"
    if not (added or removed or changed or outputs):
        return same
    details = {r["address"]: r for r in result.get("resources", [])}
    replaced = {r["address"]: r for r in result.get("replaced", [])}
    out = [heading]
    out += [f"  + {address}" for address in added]
    out += [f"  - {address}" for address in removed]
    for address, paths in changed.items():
        swap = replaced.get(address)
        if swap:
            out.append(f"-/+ {address} (replaced: id {swap['old_id']} -> {swap['new_id']})")
        else:
            out.append(f"  ~ {address}")
        rows = details.get(address, {}).get("attributes") if values else None
        if rows:
            for row in rows:
                out.append(f"      {row['path']}: {_value(row['old'])} -> {_value(row['new'])}")
        else:
            out += [f"      {path}" for path in paths]
    for o in outputs:
        mark = {"add": "+", "remove": "-"}.get(o["action"], "~")
        line = f"  {mark} output.{o['name']}"
        out.append(line + (f": {_value(o['old'])} -> {_value(o['new'])}" if values else ""))
    n_replaced = len(replaced)
    out.append(
        f"{len(added)} added, {len(removed)} removed, {len(changed) - n_replaced} changed, "
        f"{n_replaced} replaced" + (f", {len(outputs)} output(s) changed." if outputs else ".")
    )
    return "\n".join(out)


@state.command()
@click.argument("workspace")
@click.option(
    "--serial", type=click.IntRange(min=0), required=True, help="The version to bring back."
)
@click.option("--json", "as_json", is_flag=True, help="Print the new version as JSON.")
@server_options
@handle_errors
def restore(
    workspace: str, serial: int, as_json: bool, server: str | None, token: str | None
) -> None:
    """Restore version SERIAL of WORKSPACE as a new version (needs an admin token).

    Nothing is overwritten: the old content is written again with serial =
    latest + 1, so the restore itself is one more version you can undo.

    \b
    Example:
      driftsafe state restore lab/staging --serial 3
    """
    with server_client(server, token) as client, about_workspace(client, workspace):
        version = client.restore(workspace, serial)
    if as_json:
        echo_json({"version": version})
        return
    click.echo(
        f"Restored {workspace} serial {serial} as new serial {version.get('serial')} "
        f"(sha256 {str(version.get('sha256', ''))[:12]})."
    )
