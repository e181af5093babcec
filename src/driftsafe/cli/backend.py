"""``driftsafe backend check DIR``: what a Terraform root's own backend guarantees."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from driftsafe.cli.common import EXIT_ERROR, echo_json, get_settings, handle_errors


@click.group()
def backend() -> None:
    """Measure the guarantees of a team's own Terraform backend (s3, pg, http, local).

    \b
    Example:
      driftsafe backend check envs/prod
      driftsafe backend check envs/prod --json > backend-check.json
    """


@backend.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema 1).")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the result as Markdown.")
@click.option(
    "--scratch",
    metavar="ADDRESS",
    help="http backend: the scratch state address to work at (derived for a driftsafe server).",
)
@click.option(
    "--allow-local", is_flag=True, help="Check a root on the local backend (refused otherwise)."
)
@click.option(
    "--engine",
    "engine_spec",
    help="embedded (default), terraform, tofu or a path (env DRIFTSAFE_ENGINE).",
)
@handle_errors
def check(
    directory: Path,
    as_json: bool,
    as_markdown: bool,
    scratch: str | None,
    allow_local: bool,
    engine_spec: str | None,
) -> None:
    """Measure what DIR's backend guarantees: locking, stale locks, fencing, versions,
    serial rules, encryption, secrets. One line per guarantee: ok, MISSING, or n/a.

    DIR's real state is never touched: the checks run real Terraform applies in a
    scratch workspace named driftsafe-check-<random> (for http, at a scratch address)
    that is deleted afterwards, even after Ctrl-C. Credentials come from the
    environment, as for Terraform. Exit 0 when no guarantee is missing, 2 when one
    is, 1 on error. Takes about a minute.

    \b
    Example:
      driftsafe backend check envs/prod
      driftsafe backend check envs/prod --markdown > backend.md
      driftsafe backend check envs/ci --scratch https://state.example/v1/states/scratch
    """
    from driftsafe.backends import render_markdown, render_table, run_backend_check
    from driftsafe.engine import get_engine
    from driftsafe.errors import ConfigError, Interrupted

    if as_json and as_markdown:
        raise ConfigError("--json and --markdown are exclusive: pick one")
    settings = get_settings()
    engine = get_engine(settings, engine_spec)

    def say(line: str) -> None:
        click.echo(line, err=True)

    try:
        report = run_backend_check(
            directory,
            engine=engine,
            allow_local=allow_local,
            scratch_address=scratch,
            progress=say,
        )
    except Interrupted as exc:
        click.echo(f"Interrupted: {exc.message}; the scratch workspace was cleaned up.", err=True)
        sys.exit(128 + exc.signal)
    except KeyboardInterrupt:
        click.echo("Interrupted: the scratch workspace was cleaned up.", err=True)
        sys.exit(130)
    if as_json:
        echo_json(report.to_json())
    elif as_markdown:
        click.echo(render_markdown(report), nl=False)
    else:
        click.echo(render_table(report))
    if report.interrupted:
        sys.exit(EXIT_ERROR)
    sys.exit(report.exit_code)
