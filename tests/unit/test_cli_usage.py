"""Usage errors exit 1 on every command (2 means "there is a difference"), every
duration option is checked when the command line is parsed, and the help texts
say what each command does."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from driftsafe.cli.common import DURATION, TERRAFORM_DURATION, Duration, TerraformDuration
from driftsafe.cli.main import cli


def _walk(group: click.Group, ctx: click.Context, prefix: tuple[str, ...]):  # type: ignore[no-untyped-def]
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, ctx, (*prefix, name))


def _commands() -> list[tuple[tuple[str, ...], click.Command]]:
    return list(_walk(cli, click.Context(cli), ()))


def _ids(item: tuple[tuple[str, ...], click.Command]) -> str:
    return " ".join(item[0])


def _invoke(argv: list[str]) -> click.testing.Result:
    return CliRunner().invoke(cli, argv)


# `tf` hands every option on to Terraform, so Terraform judges them.
PASSTHROUGH = {("tf",)}


@pytest.mark.parametrize("item", _commands(), ids=_ids)
def test_an_unknown_option_exits_1(item: tuple[tuple[str, ...], click.Command]) -> None:
    path, _ = item
    if path in PASSTHROUGH:
        pytest.skip("driftsafe tf passes options through to Terraform")
    result = _invoke([*path, "--no-such-option"])
    assert result.exit_code == 1, result.output
    assert "No such option" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "item",
    [
        c
        for c in _commands()
        if not isinstance(c[1], click.Group)
        and any(p.required for p in c[1].params)
        and c[0] not in PASSTHROUGH
    ],
    ids=_ids,
)
def test_a_missing_argument_exits_1(item: tuple[tuple[str, ...], click.Command]) -> None:
    result = _invoke(list(item[0]))
    assert result.exit_code == 1, result.output
    assert "Missing" in result.output


@pytest.mark.parametrize(
    "item", [c for c in _commands() if isinstance(c[1], click.Group)], ids=_ids
)
def test_an_unknown_subcommand_exits_1(item: tuple[tuple[str, ...], click.Command]) -> None:
    result = _invoke([*item[0], "no-such-command"])
    assert result.exit_code == 1, result.output
    assert "No such command" in result.output


def test_the_root_alone_and_an_unknown_command_exit_1() -> None:
    assert _invoke([]).exit_code == 1
    assert _invoke(["nope"]).exit_code == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["drift", "check", "envs/staging/main.tf"],  # a file where a directory is expected
        ["drift", "check", "--jobs", "0", "envs/staging"],
        ["drift", "check"],
        ["state", "diff", "ws", "-1"],
        ["state", "show", "ws", "--serial", "-3"],
        ["audit", "--limit", "0"],
        ["token", "create", "x", "--scope", "root"],
    ],
)
def test_the_reported_usage_errors_exit_1(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "envs" / "staging").mkdir(parents=True)
    (tmp_path / "envs" / "staging" / "main.tf").write_text("")
    monkeypatch.chdir(tmp_path)
    result = _invoke(argv)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output


def test_a_usage_error_under_json_is_json_on_stdout() -> None:
    result = CliRunner().invoke(cli, ["state", "diff", "ws", "-1", "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "usage_error" and "-1" in error["message"]
    assert "Usage:" in result.stderr


def test_a_settings_error_under_json_is_json_on_stdout() -> None:
    result = CliRunner().invoke(
        cli, ["token", "list", "--json"], env={"DRIFTSAFE_LOG_LEVEL": "loud"}
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "config_error"
    assert "DRIFTSAFE_LOG_LEVEL" in result.stderr


# -- durations ---------------------------------------------------------------------------

DURATION_WORDS = ("timeout", "age", "grace", "expires", "wait", "interval", "every")


def _duration_options() -> list[tuple[tuple[str, ...], str]]:
    found = []
    for path, cmd in _commands():
        for param in cmd.params:
            if isinstance(param, click.Option) and isinstance(
                param.type, Duration | TerraformDuration
            ):
                found.append((path, param.opts[0]))
    return found


def test_every_option_named_like_a_duration_is_a_duration() -> None:
    for path, cmd in _commands():
        for param in cmd.params:
            if not isinstance(param, click.Option) or param.is_flag:
                continue
            name = param.opts[0]
            if any(word in name for word in DURATION_WORDS):
                assert isinstance(param.type, Duration | TerraformDuration), (
                    f"driftsafe {' '.join(path)} {name} is not checked as a duration"
                )
    assert len(_duration_options()) >= 7


@pytest.mark.parametrize(("path", "option"), _duration_options(), ids=str)
def test_a_bad_duration_is_refused_up_front(
    path: tuple[str, ...], option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message is the one `lock unlock --max-age` gave, and nothing runs:
    `drift check --lock-timeout soon` no longer reaches Terraform."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()
    extra = {"drift": ["root"], "ci": ["root"], "lock": ["lab/x"], "token": ["ci"]}
    argv = [*path, option, "soon", *extra.get(path[0], [])]
    result = _invoke(argv)
    assert result.exit_code == 1, result.output
    assert "invalid duration 'soon'; use e.g. 30s, 5m, 1h30m, 250ms" in result.output
    assert "Terraform" not in result.output and "terraform" not in result.output
    assert not (tmp_path / "root" / ".terraform").exists()
    assert not (tmp_path / ".github").exists()


@pytest.mark.parametrize(
    ("text", "seconds", "for_terraform"),
    [
        ("5s", 5.0, "5s"),
        ("10m", 600.0, "10m"),
        ("1h30m", 5400.0, "1h30m"),
        ("250ms", 0.25, "250ms"),
        ("1d", 86400.0, "86400s"),  # Go's durations have no days
        ("90", 90.0, "90s"),  # nor bare numbers
        ("1.5", 1.5, "1500ms"),
        ("0", 0.0, "0s"),
    ],
)
def test_duration_values(text: str, seconds: float, for_terraform: str) -> None:
    assert DURATION.convert(text, None, None) == seconds
    assert TERRAFORM_DURATION.convert(text, None, None) == for_terraform


# -- help texts --------------------------------------------------------------------------


@pytest.mark.parametrize("item", _commands(), ids=_ids)
def test_the_listing_says_what_each_command_does(
    item: tuple[tuple[str, ...], click.Command],
) -> None:
    """The one line a parent's --help shows is a phrase, not a cut-off word
    (`ci init` was listed as "Write...")."""
    shown = item[1].get_short_help_str(limit=45)
    assert len(shown.removesuffix("...").split()) >= 4, f"driftsafe {_ids(item)}: {shown!r}"


def test_engine_options_name_their_environment_variable() -> None:
    for path, cmd in _commands():
        for param in cmd.params:
            if isinstance(param, click.Option) and param.opts[0] == "--engine":
                assert "DRIFTSAFE_ENGINE" in (param.help or ""), " ".join(path)


def test_help_examples_use_the_default_port() -> None:
    for path, cmd in _commands():
        text = cmd.help or ""
        for port in ("8080", "8700", "8443"):
            assert f":{port}" not in text and f"--port {port}" not in text, " ".join(path)
        if "127.0.0.1:" in text:
            assert "127.0.0.1:8787" in text, " ".join(path)


def test_every_json_option_reaches_the_error_handler() -> None:
    """handle_errors renders an error as JSON when the command's ``as_json`` is set:
    every --json option must be called that, on a command it wraps."""
    with_json = [
        (path, cmd)
        for path, cmd in _commands()
        if any("--json" in getattr(p, "opts", []) for p in cmd.params)
    ]
    assert len(with_json) >= 15
    for path, cmd in with_json:
        (param,) = [p for p in cmd.params if "--json" in getattr(p, "opts", [])]
        assert param.name == "as_json", " ".join(path)
        assert hasattr(cmd.callback, "__wrapped__"), f"{' '.join(path)} lacks handle_errors"


def test_readme_and_docs_use_the_default_port() -> None:
    # The console section once said :8443 while every other example said :8787.
    root = Path(__file__).resolve().parents[2]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    stray = [
        f"{page.name}: {line.strip()}"
        for page in pages
        for line in page.read_text(encoding="utf-8").splitlines()
        if any(f":{port}" in line or f"--port {port}" in line for port in ("8080", "8700", "8443"))
    ]
    assert stray == []
