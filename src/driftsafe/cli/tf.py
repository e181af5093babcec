"""``driftsafe tf ARGS...``: Terraform itself, with driftsafe's CLI config."""

from __future__ import annotations

import sys

import click

from driftsafe.cli.common import get_settings, handle_errors
from driftsafe.engine import get_engine, passthrough


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": [],
    },
    add_help_option=False,
)
@click.option(
    "--engine",
    "engine_spec",
    metavar="ENGINE",
    help="embedded (default), terraform, tofu or a path (env DRIFTSAFE_ENGINE).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def tf(engine_spec: str | None, args: tuple[str, ...]) -> None:
    """Run Terraform with driftsafe's CLI config (the lab provider, offline).

    Arguments pass through unchanged, so output and exit code are Terraform's own.

    \b
    Example:
      driftsafe tf -chdir=envs/staging plan
      driftsafe tf version
    """
    if args in ((), ("--help",), ("-h",)) and not engine_spec:
        click.echo(click.get_current_context().get_help())
        if not args:
            sys.exit(0)
    engine = get_engine(get_settings(), engine_spec)
    rc = passthrough(engine, list(args))
    if rc == 0 and args and args[-1] in ("version", "-version", "--version"):
        click.echo(f"(driftsafe engine: {engine.describe()})")
    sys.exit(rc)
