"""``driftsafe secrets scan``: plaintext secrets in a state file or a server's versions."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from driftsafe.cli.common import (
    EXIT_CHANGES,
    echo_json,
    format_table,
    handle_errors,
    server_client,
    server_options,
)
from driftsafe.errors import ConfigError
from driftsafe.state import SecretFinding, scan_bytes


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None


def _echo_findings(findings: list[SecretFinding]) -> None:
    rows = [[f.address, f.path or "-", f.kind, f.detector, f.message] for f in findings]
    click.echo(format_table(["ADDRESS", "PATH", "KIND", "DETECTOR", "WHY"], rows))


@click.group()
def secrets() -> None:
    """Find plaintext secrets in Terraform state.

    \b
    Example:
      driftsafe secrets scan envs/staging/terraform.tfstate
      driftsafe secrets scan --workspace lab/prod --all-versions
    """


@secrets.command()
@click.argument("file", required=False, metavar="[FILE]")
@click.option("--workspace", "-w", metavar="WS", help="Scan a server's workspace instead.")
@click.option("--all-versions", is_flag=True, help="With --workspace: every version.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@server_options
@handle_errors
def scan(
    file: str | None,
    workspace: str | None,
    all_versions: bool,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Scan FILE (a tfstate or any text file; - for stdin) or a server's workspace.

    Reports values Terraform marks sensitive, attributes whose names look secret,
    known secret formats and high-entropy strings. Findings say where, never the
    value. Exit status: 0 clean, 2 findings, 1 error.

    \b
    Example:
      driftsafe secrets scan terraform.tfstate
      driftsafe secrets scan --workspace lab/staging --all-versions --json
    """
    if (file is None) == (workspace is None):
        raise ConfigError("give either FILE or --workspace WS")
    if all_versions and workspace is None:
        raise ConfigError("--all-versions needs --workspace")
    total = 0
    if file is not None:
        findings = scan_bytes(_read(file))
        total = len(findings)
        if as_json:
            echo_json({"source": file, "findings": [f.to_json() for f in findings]})
        elif findings:
            _echo_findings(findings)
            click.echo(f"{total} finding(s) in {file}.")
        else:
            click.echo(f"{file}: no plaintext secrets found.")
    elif workspace is not None:
        with server_client(server, token) as client:
            results = client.scan_workspace(workspace, all_versions=all_versions)
        total = sum(len(found) for _, found in results)
        if as_json:
            echo_json(
                {
                    "workspace": workspace,
                    "versions": [
                        {"serial": serial, "findings": [f.to_json() for f in found]}
                        for serial, found in results
                    ],
                }
            )
        else:
            for serial, found in results:
                if found:
                    click.echo(f"{workspace} serial {serial}:")
                    _echo_findings(found)
            where = f"{len(results)} version(s) of {workspace}"
            click.echo(f"{total} finding(s) in {where}." if total else f"{where}: clean.")
    if total:
        sys.exit(EXIT_CHANGES)
