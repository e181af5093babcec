"""A real ``driftsafe serve`` subprocess on port 0 and a real Terraform stack on it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from clientenv import MAIN_TF, PASSWORD, WS, Server, Stack, create_token, make_env

from driftsafe.engine import Engine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("cli-server-home")
    env = make_env(home)
    db = f"sqlite:///{home / 'state.db'}"
    tokens = {
        "admin": create_token(env, db, "ops-admin", "admin"),
        "writer": create_token(env, db, "ci", "write"),
        "reader": create_token(env, db, "viewer", "read"),
        "stranger": create_token(env, db, "other-team", "admin", "other/*"),
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


@pytest.fixture(scope="module")
def stack(server: Server, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """WS holds versions written by real Terraform: 100 connections, then 200 (+ extra)."""
    workdir = tmp_path_factory.mktemp("cli-stack")
    (workdir / "main.tf").write_text(MAIN_TF % {"url": server.url, "ws": WS})
    # Only what this stack adds: the engine lays it over the environment and its own
    # TF_CLI_CONFIG_FILE.
    env = {
        "TF_HTTP_USERNAME": "ci",
        "TF_HTTP_PASSWORD": server.writer,
        "TF_VAR_db_password": PASSWORD,
    }
    init = engine.run(["init", "-no-color", "-input=false"], cwd=workdir, env=env, timeout=120)
    assert init.returncode == 0, init.stderr
    built = Stack(workdir, engine, env)
    built.apply(100)
    built.apply(200)
    return built
