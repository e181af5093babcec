"""A real ``driftsafe serve`` subprocess on port 0 and a real Terraform stack on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from driftsafe.cli.main import cli
from driftsafe.engine import Engine

WS = "cli/app"
PASSWORD = "Tr0ub4dor-and-3-horses"

MAIN_TF = """
terraform {
  backend "http" {
    address        = "%(url)s/v1/states/%(ws)s"
    lock_address   = "%(url)s/v1/locks/%(ws)s"
    unlock_address = "%(url)s/v1/locks/%(ws)s"
    lock_method    = "LOCK"
    unlock_method  = "UNLOCK"
  }
}
variable "max_connections" { type = number }
variable "db_password" {
  type      = string
  sensitive = true
}
resource "terraform_data" "cfg" {
  input = { max_connections = var.max_connections, password = var.db_password }
}
resource "terraform_data" "extra" {
  count = var.max_connections > 100 ? 1 : 0
  input = "extra"
}
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTSAFE_")}
    env["DRIFTSAFE_HOME"] = str(home)
    return env


@dataclass
class Server:
    url: str
    db: str
    home: Path
    admin: str
    writer: str
    reader: str
    stranger: str  # a token for other workspaces only

    def invoke(self, *args: str, token: str | None = None) -> Result:
        """Run a driftsafe command in-process against this server."""
        env = {"DRIFTSAFE_SERVER": self.url, "DRIFTSAFE_TOKEN": token or self.admin}
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _token(env: dict[str, str], db: str, name: str, scope: str, glob: str = "*") -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftsafe",
            "token",
            "create",
            name,
            "--scope",
            scope,
            "--workspace",
            glob,
            "--db",
            db,
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token: str = json.loads(out.stdout)["token"]
    return token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("cli-server-home")
    env = _env(home)
    db = f"sqlite:///{home / 'state.db'}"
    tokens = {
        "admin": _token(env, db, "ops-admin", "admin"),
        "writer": _token(env, db, "ci", "write"),
        "reader": _token(env, db, "viewer", "read"),
        "stranger": _token(env, db, "other-team", "admin", "other/*"),
    }
    log = home / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftsafe", "serve", "--db", db, "--port", "0"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = ""
        deadline = time.monotonic() + 30
        while not url:
            text = log.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("driftsafe serve: listening on "):
                    url = line.rsplit(" ", 1)[1]
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"driftsafe serve did not start:\n{text}")
            time.sleep(0.05)
        yield Server(url=url, db=db, home=home, **tokens)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack:
    dir: Path
    engine: Engine
    env: dict[str, str]

    def apply(self, max_connections: int) -> None:
        result = self.engine.run(
            ["apply", "-auto-approve", "-no-color", f"-var=max_connections={max_connections}"],
            cwd=self.dir,
            env=self.env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def stack(server: Server, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """WS holds versions written by real Terraform: 100 connections, then 200 (+ extra)."""
    workdir = tmp_path_factory.mktemp("cli-stack")
    (workdir / "main.tf").write_text(MAIN_TF % {"url": server.url, "ws": WS})
    env = _env(server.home)
    env.update(TF_HTTP_USERNAME="ci", TF_HTTP_PASSWORD=server.writer, TF_VAR_db_password=PASSWORD)
    init = engine.run(["init", "-no-color", "-input=false"], cwd=workdir, env=env, timeout=120)
    assert init.returncode == 0, init.stderr
    built = Stack(workdir, engine, env)
    built.apply(100)
    built.apply(200)
    return built
