"""Shared CLI plumbing: settings in the click context, error rendering, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from driftsafe.errors import DriftsafeError
from driftsafe.settings import Settings

if TYPE_CHECKING:
    from driftsafe.client import Client

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
    """Render DriftsafeError as one line on stderr and exit 1 (128+N when a signal
    stopped the command): never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DriftsafeError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            if exc.detail and isinstance(exc.detail, str):
                click.echo(exc.detail, err=True)
            sys.exit(getattr(exc, "exit_code", EXIT_ERROR))

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


def server_client(server: str | None, token: str | None) -> Client:
    """A client for the server in ``--server``/``DRIFTSAFE_SERVER`` with ``--token``."""
    from driftsafe.client import Client  # httpx is not needed by every command

    return Client.from_settings(get_settings(), server=server, token=token)


# -- tables ----------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns, two spaces apart, like ``terraform state list`` tooling."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def short_time(value: object) -> str:
    """``2026-11-27T07:30:12.345678+00:00`` -> ``2026-11-27 07:30:12``."""
    text = str(value or "")
    return text[:19].replace("T", " ") if len(text) >= 19 else text


def human_size(size: object) -> str:
    n = float(size) if isinstance(size, int | float) else 0.0
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # unreachable: MiB is the last unit
