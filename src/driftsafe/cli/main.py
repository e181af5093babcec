"""The ``driftsafe`` command: a root group that registers one module per command group."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from driftsafe import __version__
from driftsafe.cli.common import EXIT_ERROR, echo_json, error_json, report_error
from driftsafe.errors import DriftsafeError
from driftsafe.settings import Settings

# (module under driftsafe.cli, attribute) for each top-level command. Each module
# owns its group; importing them lazily keeps `driftsafe --help` fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "tf": ("tf", "tf"),
    "lab": ("lab", "lab"),
    "serve": ("serve", "serve"),
    "state": ("versions", "state"),
    "lock": ("lock", "lock"),
    "token": ("token", "token"),
    "audit": ("audit", "audit"),
    "rotate-key": ("rotate_key", "rotate_key"),
    "store": ("store", "store"),
    "secrets": ("secrets", "secrets"),
    "drift": ("drift", "drift"),
    "ci": ("ci", "ci"),
    "backend": ("backend", "backend"),
}


class LazyGroup(click.Group):
    """The root group: loads command modules lazily, and gives every usage error of
    every command exit code 1 (click's default is 2, which driftsafe keeps for "there
    is a difference", as Terraform's -detailed-exitcode does)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            _usage_error(exc, args)
            raise
        ctx.meta["driftsafe.argv"] = list(args)
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        argv: Sequence[str] = ctx.meta.get("driftsafe.argv", ())
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # Raised while a subcommand parses its arguments, or by a parameter type.
            _usage_error(exc, argv)
            raise
        except DriftsafeError as exc:
            # Raised outside a command's own handler (the settings, read first).
            report_error(exc, as_json="--json" in argv)
            sys.exit(EXIT_ERROR)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name]
        try:
            module = importlib.import_module(f"driftsafe.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"driftsafe.cli.{module_name}":
                return None  # command group not built yet
            raise
        command = getattr(module, attr, None)
        return command if isinstance(command, click.Command) else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="driftsafe")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Make a Terraform/OpenTofu stack drift-safe, and prove it with evidence.

    \b
    Example:
      driftsafe lab run --dir /tmp/drill     # the whole drill and its report
      driftsafe tf -chdir=envs/staging plan  # Terraform with the lab provider
    """
    ctx.obj = Settings.from_env()


def _usage_error(exc: click.UsageError, argv: Sequence[str]) -> None:
    """Exit 1 for a usage error; under ``--json`` also say it as JSON on stdout.
    click then prints the usage and the message on stderr and exits."""
    exc.exit_code = EXIT_ERROR  # type: ignore[misc]
    if "--json" in argv:
        echo_json(error_json("usage_error", exc.format_message()))


def main() -> None:
    try:
        cli(prog_name="driftsafe")
    except DriftsafeError as exc:  # settings errors raised before a command's own handler
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(1)
