"""Shared pieces of the client tests: the server under test and a Terraform stack on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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


def make_env(home: Path) -> dict[str, str]:
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


def create_token(env: dict[str, str], db: str, name: str, scope: str, glob: str = "*") -> str:
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
