"""The README's console blocks, as a newcomer types them.

The hand-run stack demo runs for real, command by command in one shell, and every
`# comment` after a command is checked against that command's output. The other
blocks' `driftsafe` command lines are parsed by the real command tree, so an option
renamed in the code breaks this test instead of the reader's first hour.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from driftsafe.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def console_blocks(text: str) -> dict[str, list[str]]:
    """``{section heading: [console block, ...]}`` for every ```console block."""
    blocks: dict[str, list[str]] = {}
    section = ""
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.strip() == "```console":
            body = []
            for inner in lines:
                if inner.strip() == "```":
                    break
                body.append(inner)
            blocks.setdefault(section, []).append("\n".join(body))
    return blocks


def commands(block: str) -> list[tuple[str, str | None]]:
    """``[(command, promised output or None)]`` for each ``$ `` line of a block. The
    promise is the comment after two or more spaces and ``# ``."""
    found = []
    lines = iter(block.splitlines())
    for line in lines:
        if not line.startswith("$ "):
            continue
        while line.endswith("\\"):  # a command continued on the next line
            line = line[:-1] + " " + next(lines).strip()
        command, _, promise = line[2:].partition("  # ")
        found.append((command.strip(), promise.strip() or None))
    return found


def test_readme_blocks_are_found() -> None:
    blocks = console_blocks(README.read_text())
    assert "Try the stack by hand" in blocks
    assert "Run the state server for a team" in blocks
    assert "Catch drift before anyone applies" in blocks


@pytest.mark.slow
def test_the_hand_run_stack_demo_does_what_the_readme_says(tmp_path: Path) -> None:
    (block,) = console_blocks(README.read_text())["Try the stack by hand"]
    steps = commands(block)
    assert any("plan -refresh-only" in c for c, _ in steps)
    assert all(p for c, p in steps if "plan -refresh-only" in c or "grep" in c)
    # One shell for the whole block (cd and export carry on), one output file per
    # command. The block's own paths, moved under tmp_path.
    script = ["set -u"]
    for n, (command, _) in enumerate(steps):
        command = command.replace("/tmp/s", str(tmp_path / "s"))
        script.append(f"{{ {command} ; }} > {tmp_path}/out.{n} 2>&1; echo $? > {tmp_path}/rc.{n}")
        script.append(f"[ $(cat {tmp_path}/rc.{n}) = 0 ] || exit 3")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    ran = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=REPO,  # the block starts in a checkout: .venv/bin/driftsafe
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    for n, (command, promise) in enumerate(steps):
        out_file = tmp_path / f"out.{n}"
        assert out_file.exists(), f"{command!r} never ran:\n{ran.stderr}"
        output = ANSI.sub("", out_file.read_text())
        rc = (tmp_path / f"rc.{n}").read_text().strip()
        assert rc == "0", f"$ {command}\nexit {rc}\n{output}"
        if promise:
            assert promise in output, f"$ {command}\npromised {promise!r}, got:\n{output}"
    assert ran.returncode == 0, ran.stderr


def _driftsafe_lines() -> list[list[str]]:
    found = []
    for section, blocks in console_blocks(README.read_text()).items():
        if section == "Try the stack by hand":
            continue  # run for real above
        for block in blocks:
            for command, _ in commands(block):
                for part in command.split("&&"):
                    argv = shlex.split(part, comments=True)
                    if argv and argv[0] == "driftsafe":
                        found.append(argv[1:])
    return found


@pytest.mark.parametrize("argv", _driftsafe_lines(), ids=lambda a: " ".join(a[:3]))
def test_readme_command_lines_parse(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every other `driftsafe` line of the README names real commands and options
    with valid values (parsed, not run: they need a team's servers)."""
    for root in ("envs/staging", "envs/prod"):
        (tmp_path / root).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    parent = click.Context(cli, info_name="driftsafe")
    command: click.Command = cli
    name, rest = "driftsafe", list(argv)
    while isinstance(command, click.Group):
        name_, found, rest = command.resolve_command(parent, rest)
        assert found is not None and name_ is not None, f"driftsafe {' '.join(argv)}"
        parent = click.Context(found, info_name=name_, parent=parent)
        command, name = found, name_
    # Parsing converts and checks every value (durations, choices, paths).
    ctx = command.make_context(name, rest, parent=parent.parent)
    assert ctx.command.callback is not None


def test_readme_token_lines_run(tmp_path: Path) -> None:
    """The README's token commands succeed as written (write tokens need a glob)."""
    from click.testing import CliRunner

    env = {"DRIFTSAFE_DB": f"sqlite:///{tmp_path / 'ds.db'}", "DRIFTSAFE_HOME": str(tmp_path)}
    lines = [a for a in _driftsafe_lines() if a[:2] == ["token", "create"]]
    assert lines
    for argv in lines:
        result = CliRunner().invoke(cli, argv, env=env)
        assert result.exit_code == 0, f"driftsafe {' '.join(argv)}: {result.output}"
