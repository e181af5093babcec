"""Helpers for server tests: the app in-process or a started server with tokens,
Terraform roots on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
from starlette.types import ASGIApp, Message

from driftsafe.engine import Engine
from driftsafe.engine.process import Process, RunResult
from driftsafe.server.serving import RunningServer
from driftsafe.store import SqlStore


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan as uvicorn does: startup before the first request,
    shutdown after the last. Sent to the app ``create_app`` returns, so the wrapper
    that uvicorn serves passes the messages on exactly as in production."""
    to_app, app_inbox = anyio.create_memory_object_stream[Message](1)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](1)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}

    async def run() -> None:
        async with app_inbox, app_outbox:
            await app(scope, app_inbox.receive, app_outbox.send)

    async with anyio.create_task_group() as tg, to_app, from_app:
        tg.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        started = await from_app.receive()
        if started["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"app startup failed: {started.get('message')}")
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            stopped = await from_app.receive()
            if stopped["type"] != "lifespan.shutdown.complete":
                raise RuntimeError(f"app shutdown failed: {stopped.get('message')}")


@dataclass
class AppSrv:
    """The real app over a real store, in this process: requests go through
    ``httpx.ASGITransport`` instead of a socket."""

    app: ASGIApp
    store: SqlStore
    admin: str
    writer: str
    reader: str
    db: str
    _clients: list[httpx.AsyncClient] = field(default_factory=list, repr=False)

    def client(self, token: str | None = None, *, basic: str | None = None) -> httpx.AsyncClient:
        """A client sending ``token`` as Bearer (the API), or ``basic`` as the HTTP Basic
        password (the backend, as Terraform does); closed when the fixture ends."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),  # type: ignore[arg-type]
            base_url="http://driftsafe.test",
            headers=headers,
            auth=("tf", basic) if basic else None,
            timeout=60,
        )
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        while self._clients:
            await self._clients.pop().aclose()


@dataclass
class Srv:
    running: RunningServer
    admin: str
    writer: str
    reader: str
    db: str

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def store(self) -> SqlStore:
        return self.running.store

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


BACKEND = """
terraform {{
  backend "http" {{
    address        = "{url}/v1/states/{ws}"
    lock_address   = "{url}/v1/locks/{ws}"
    unlock_address = "{url}/v1/locks/{ws}"
    lock_method    = "LOCK"
    unlock_method  = "UNLOCK"
    retry_max      = 0
  }}
}}
"""

SLOW = """
variable "sleep" {
  type    = number
  default = 0
}
variable "tag" {
  type    = string
  default = "a"
}
resource "terraform_data" "slow" {
  input            = var.tag
  triggers_replace = [var.tag]
  provisioner "local-exec" {
    command = "sleep ${var.sleep}"
  }
}
output "tag" {
  value = terraform_data.slow.output
}
"""


APPLY_ARGS = ("apply", "-auto-approve", "-input=false", "-no-color")


def tf_root(path: Path, url: str, ws: str, body: str = SLOW, *, wait: str | None = None) -> Path:
    """A root on ``url``/``ws``; ``wait`` makes its LOCK queue on the server (?wait=)."""
    path.mkdir(parents=True, exist_ok=True)
    backend = BACKEND.format(url=url, ws=ws)
    if wait:
        backend = backend.replace(
            f'lock_address   = "{url}/v1/locks/{ws}"',
            f'lock_address   = "{url}/v1/locks/{ws}?wait={wait}"',
        )
    (path / "backend.tf").write_text(backend)
    (path / "main.tf").write_text(body)
    return path


@dataclass
class Tf:
    engine: Engine
    cwd: Path
    token: str

    def env(self) -> dict[str, str]:
        return {
            "TF_HTTP_USERNAME": "driftsafe",
            "TF_HTTP_PASSWORD": self.token,
            "TF_IN_AUTOMATION": "1",
        }

    def start(self, *args: str) -> Process:
        return self.engine.start([*args], cwd=self.cwd, env=self.env())

    def run(self, *args: str, timeout: float = 120) -> RunResult:
        return self.engine.run([*args], cwd=self.cwd, env=self.env(), timeout=timeout)

    def ok(self, *args: str) -> RunResult:
        result = self.run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result


def make_tf(
    engine: Engine,
    path: Path,
    srv: Srv,
    ws: str,
    *,
    token: str | None = None,
    body: str = SLOW,
    init: bool = True,
) -> Tf:
    tf = Tf(engine, tf_root(path, srv.url, ws, body), token or srv.writer)
    if init:
        tf.ok("init", "-input=false", "-no-color")
    return tf


class ServeProcess:
    """``driftsafe serve`` as a subprocess; its stderr is drained so it never blocks."""

    def __init__(self, args: list[str], env: dict[str, str], timeout: float = 30) -> None:
        import os
        import subprocess
        import sys
        import threading
        import time

        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "driftsafe", "serve", *args],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("serve did not start:\n" + "".join(self.lines))
        listening = [line for line in self.lines if "listening on" in line]
        self.url = listening[0].strip().rsplit(" ", 1)[1]

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("driftsafe serve: listening on "):
                self._ready.set()

    def stop(self) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self._thread.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return rc
