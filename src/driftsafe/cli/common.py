"""Shared CLI plumbing: settings in the click context, error rendering, JSON output,
the duration parameter type and the table helpers."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from driftsafe.durations import parse_duration
from driftsafe.errors import DriftsafeError, NotFound
from driftsafe.settings import Settings
from driftsafe.timestamps import parse_timestamp

if TYPE_CHECKING:
    from driftsafe.client import Client

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes follow Terraform's -detailed-exitcode: 2 is kept for "there is a
# difference" (drift, a state diff, a missing guarantee), so a usage error is 1.
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


def error_json(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The one error shape, the server's: ``{"error": {"code", "message", "detail"}}``."""
    return {"error": {"code": code, "message": message, "detail": detail}}


def report_error(exc: DriftsafeError, *, as_json: bool) -> None:
    """One line on stderr; with ``--json`` also the error as JSON on stdout, so a
    script reading stdout gets JSON whatever happened."""
    if as_json:
        echo_json(error_json(exc.code, exc.message, exc.detail))
    click.echo(f"Error: {exc.message}", err=True)
    if exc.detail and isinstance(exc.detail, str):
        click.echo(exc.detail, err=True)


def handle_errors(func: F) -> F:
    """Render DriftsafeError as one line on stderr (and as JSON on stdout under
    ``--json``) and exit 1 (128+N when a signal stopped the command): never a
    traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DriftsafeError as exc:
            report_error(exc, as_json=bool(kwargs.get("as_json")))
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


@contextmanager
def about_workspace(client: Client, workspace: str) -> Iterator[None]:
    """A NotFound from the server about ``workspace`` (no such version, not locked)
    becomes the one "workspace does not exist" error when the workspace does not
    exist at all, so every command says it the same way."""
    try:
        yield
    except NotFound:
        client.require_workspace(workspace)
        raise


# -- durations ---------------------------------------------------------------------------


class Duration(click.ParamType[float, Any]):
    """A duration such as ``30s``, ``5m``, ``1h30m``, ``250ms`` or ``30d``, checked when
    the command line is parsed; the value is seconds (a float)."""

    name = "duration"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "DUR"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except DriftsafeError as exc:
            self.fail(exc.message, param, ctx)


# What Go's time.ParseDuration (Terraform's -lock-timeout) reads as it is.
_GO_DURATION = re.compile(r"(\d+(\.\d+)?(ms|s|m|h))+")


def go_duration(seconds: float) -> str:
    """Seconds in a form Terraform's ``-lock-timeout`` accepts (``90s``, ``1500ms``)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


class TerraformDuration(click.ParamType[str, Any]):
    """A duration handed on to Terraform (``-lock-timeout``): checked like any other,
    and the value is a string Terraform reads: the text as typed when Terraform reads
    it as it is, else the same time written in seconds (``1d`` -> ``86400s``)."""

    name = "duration"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "DUR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        seconds = DURATION.convert(value, param, ctx)
        text = str(value).strip().lower()
        return text if _GO_DURATION.fullmatch(text) else go_duration(seconds)


DURATION = Duration()
TERRAFORM_DURATION = TerraformDuration()


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
    """A timestamp for a table, to the second and with its zone, always in UTC:
    ``2026-11-27T09:30:12.345678+02:00`` -> ``2026-11-27T07:30:12Z``. A time
    without a zone is taken as UTC (driftsafe writes UTC only); text that is no
    timestamp is shown as it is."""
    text = str(value or "")
    seconds = parse_timestamp(text)
    if seconds is None:
        return text
    return dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_size(size: object) -> str:
    n = float(size) if isinstance(size, int | float) else 0.0
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # unreachable: MiB is the last unit
