"""Shared CLI plumbing: settings in the click context, error rendering, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from driftsafe.errors import DriftsafeError
from driftsafe.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes follow Terraform's -detailed-exitcode.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


def get_settings(ctx: click.Context | None = None) -> Settings:
    """The Settings read once in the root group (read here if a command runs standalone)."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings.from_env()
    return root.obj


def handle_errors(func: F) -> F:
    """Render DriftsafeError as one line on stderr and exit 1: never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DriftsafeError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            if exc.detail and isinstance(exc.detail, str):
                click.echo(exc.detail, err=True)
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def server_options(func: F) -> F:
    """``--server`` and ``--token`` for client commands (env: DRIFTSAFE_SERVER/TOKEN)."""
    func = click.option(
        "--token", envvar="DRIFTSAFE_TOKEN", help="API token (env DRIFTSAFE_TOKEN)."
    )(func)
    func = click.option(
        "--server", envvar="DRIFTSAFE_SERVER", help="Server base URL (env DRIFTSAFE_SERVER)."
    )(func)
    return func
