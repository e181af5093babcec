"""Helpers for the lab provider tests: a Terraform runner bound to one root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from driftsafe.engine import Engine, RunResult

SECRET = "lab-secret-Zq81vX3k-never-in-state"


@dataclass
class Env:
    """One initialised root of the shared stack, with a Terraform runner bound to it."""

    dir: Path
    runtime: Path
    engine: Engine

    def tf(self, *args: str, check: bool = True, secret: str | None = SECRET) -> RunResult:
        env = {"TF_VAR_app_secret": secret} if secret is not None else {}
        result = self.engine.run(with_flags(args), cwd=self.dir, env=env, timeout=180)
        if check:
            assert result.returncode in (0, 2), f"{args}: {result.stdout}\n{result.stderr}"
        return result


def with_flags(args: tuple[str, ...]) -> list[str]:
    """Options go right after the subcommand (import takes them nowhere else)."""
    command, rest = args[0], list(args[1:])
    if command in ("output", "version"):
        return list(args)
    flags = ["-no-color"] if command in ("validate", "fmt") else ["-no-color", "-input=false"]
    return [command, *flags, *rest]


def make_tf_dir(engine: Engine, path: Path, hcl: str) -> Callable[..., RunResult]:
    """A one-file root using the lab provider, initialised; returns a runner for it."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "main.tf").write_text(
        "terraform {\n  required_providers {\n    lab = {\n"
        '      source  = "registry.driftsafe.local/driftsafe/lab"\n'
        '      version = "0.1.0"\n    }\n  }\n}\n\n' + hcl
    )
    init = engine.run(["init", "-no-color", "-input=false"], cwd=path, timeout=180)
    assert init.returncode == 0, init.stderr

    def run(*args: str) -> RunResult:
        return engine.run(with_flags(args), cwd=path, timeout=180)

    return run
