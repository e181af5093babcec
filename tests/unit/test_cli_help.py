"""Every command has --help with an example; bad input never gives a traceback."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from driftsafe.cli.main import COMMANDS, LazyGroup, cli


def _walk(group: click.Group, ctx: click.Context, prefix: tuple[str, ...]):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, ctx, (*prefix, name))


def _all_commands() -> list[tuple[str, ...]]:
    ctx = click.Context(cli)
    return [path for path, _ in _walk(cli, ctx, ())]


def test_every_top_level_command_is_built() -> None:
    ctx = click.Context(cli)
    assert isinstance(cli, LazyGroup)
    assert set(cli.list_commands(ctx)) == set(COMMANDS)


@pytest.mark.parametrize("path", _all_commands(), ids=" ".join)
def test_help_has_an_example(path: tuple[str, ...]) -> None:
    if path == ("tf",):
        # `tf` passes --help through to Terraform; its own help shows without args.
        result = CliRunner().invoke(cli, ["tf"])
    else:
        result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"driftsafe {' '.join(path)} --help has no example"


@pytest.mark.parametrize(
    "argv",
    [
        ["state", "versions"],
        ["lock", "status"],
        ["drift", "check"],
        ["token", "create"],
        ["lab", "init"],
        ["secrets", "scan", "/nonexistent/file.tfstate"],
        ["lab", "run", "--only", "nope"],
    ],
)
def test_bad_input_is_an_error_not_a_traceback(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 1, result.output  # 2 would read as "drift" to a script
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
