"""Shutdown and outages: SIGTERM drains (in-flight uploads are stored, waiters get 423
with the holder, the process exits within its grace period); PostgreSQL down answers
503 with Retry-After and recovers by itself, LISTEN included; a full disk answers 507,
keeps every stored version readable and takes writes again once space is freed.

Real processes where signals or PostgreSQL restarts are the point; the full disk is a
small tmpfs the test mounts (root only), with the app in-process."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from srvhelpers import ServeProcess, lifespan
from test_server_api import info, state
from test_server_cli import make_token

from driftsafe.server.app import create_app
from driftsafe.settings import Settings
from driftsafe.store import open_store, verify_store
from driftsafe.store.crypto import new_key_text

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import pgcontrol  # noqa: E402

MiB = 1024 * 1024


def big_state(size: int, serial: int = 1) -> bytes:
    """A valid state of about ``size`` bytes (one big output)."""
    filler = "x" * size
    body = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": "big",
        "outputs": {"blob": {"value": filler, "type": "string"}},
        "resources": [],
    }
    return json.dumps(body).encode()


def wait_until(check, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def refuses_connections(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def waiters(db_file: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM ds_lock_waiters").fetchone()[0])


@pytest.mark.slow
def test_sigterm_stores_the_upload_in_flight_answers_waiters_and_stops_accepting(
    tmp_path: Path,
) -> None:
    db_file = tmp_path / "ds.db"
    db = f"sqlite:///{db_file}"
    env = {
        "DRIFTSAFE_HOME": str(tmp_path),
        "DRIFTSAFE_ENCRYPTION_KEY": new_key_text(),
        "DRIFTSAFE_SHUTDOWN_GRACE": "60s",
    }
    writer = make_token(db, "writer", "write", env)
    server = ServeProcess(["--db", db, "--port", "0"], env)
    body = big_state(40 * MiB)
    sent_some, may_finish = threading.Event(), threading.Event()
    results: dict[str, httpx.Response] = {}

    def pieces() -> Iterator[bytes]:
        for n, start in enumerate(range(0, len(body), MiB)):
            if n == 4:
                sent_some.set()
                may_finish.wait(30)  # the rest goes once the server stopped accepting
            yield body[start : start + MiB]

    def upload() -> None:
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        headers = {"Content-Length": str(len(body)), "Content-MD5": md5}
        with httpx.Client(base_url=server.url, auth=("tf", writer), timeout=120) as c:
            results["upload"] = c.post("/v1/states/big", content=pieces(), headers=headers)

    def wait_for_lock() -> None:
        with httpx.Client(base_url=server.url, auth=("tf", writer), timeout=120) as c:
            results["waiter"] = c.request(
                "LOCK", "/v1/locks/app", params={"wait": "10m"}, json=info("W")
            )

    threads = [threading.Thread(target=upload), threading.Thread(target=wait_for_lock)]
    try:
        with httpx.Client(base_url=server.url, auth=("tf", writer), timeout=30) as c:
            assert c.request("LOCK", "/v1/locks/app", json=info("H")).status_code == 200
        for thread in threads:
            thread.start()
        assert sent_some.wait(30)
        wait_until(lambda: waiters(db_file) == 1, what="the waiter to queue")
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: refuses_connections(server.url), what="the listener to close")
        assert threads[0].is_alive()  # the upload is still in flight, not cut
        may_finish.set()
        for thread in threads:
            thread.join(90)
        # Waited 10 minutes, far past the grace: only the drain answers it, with the holder.
        assert results["waiter"].status_code == 423
        assert results["waiter"].json()["ID"] == "H"
        assert results["upload"].status_code == 200, results["upload"].text
        assert results["upload"].json() == {"serial": 1, "created": True}
        assert server.proc.wait(60) == 0
    finally:
        may_finish.set()
        server.stop()
    settings = Settings.from_env(env)
    store = open_store(settings, db)
    try:
        stored = store.latest_state("big")
        assert stored is not None
        assert hashlib.sha256(stored[1]).hexdigest() == hashlib.sha256(body).hexdigest()
        assert store.get_lock("app") is not None  # the holder's lock outlives a restart
    finally:
        store.close()


@pytest.mark.slow
def test_sigterm_exits_within_the_grace_period_when_a_request_never_ends(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'ds.db'}"
    env = {
        "DRIFTSAFE_HOME": str(tmp_path),
        "DRIFTSAFE_ENCRYPTION_KEY": new_key_text(),
        "DRIFTSAFE_SHUTDOWN_GRACE": "2s",
    }
    writer = make_token(db, "writer", "write", env)
    server = ServeProcess(["--db", db, "--port", "0"], env)
    auth = base64.b64encode(f"tf:{writer}".encode()).decode()
    host, port = server.url.removeprefix("http://").split(":")
    try:
        # A body that stalls half-way and never ends: only the grace period ends it.
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(
                (
                    "POST /v1/states/stalled HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Basic {auth}\r\nContent-Length: 1000\r\n\r\n{{"
                ).encode()
            )
            time.sleep(0.5)  # let the server start reading it
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(30) == 0
    finally:
        server.stop()
    assert any("graceful shutdown exceeded" in line for line in server.lines), server.lines


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs, unmounted afterwards however the test ends."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no space left."""
    with open(path, "wb") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())


@pytest.mark.anyio
async def test_a_full_disk_answers_507_and_loses_nothing(
    small_disk: Path, server_settings: Settings
) -> None:
    store = open_store(server_settings, f"sqlite:///{small_disk / 'ds.db'}")
    try:
        writer = store.create_token("writer", "write")[1]
        app = create_app(server_settings, store)
        async with lifespan(app):
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                base_url="http://driftsafe.test",
                auth=("tf", writer),
            )
            async with client:
                first = state(1)
                assert (await client.post("/v1/states/app", content=first)).status_code == 200
                # Incompressible: this write needs real space.
                second = state(2, extra={"id": "2", "blob": os.urandom(600_000).hex()})
                fill(small_disk / "filler")
                refused = await client.post("/v1/states/app", content=second)
                assert refused.status_code == 507, refused.text
                error = refused.json()["error"]
                assert error["code"] == "insufficient_storage"
                assert "disk is full" in error["message"] and "free space" in error["message"]
                kept = await client.get("/v1/states/app")
                assert kept.status_code == 200 and kept.content == first
                assert verify_store(store).problems == []
                (small_disk / "filler").unlink()
                again = await client.post("/v1/states/app", content=second)
                assert again.status_code == 200, again.text
                assert (await client.get("/v1/states/app")).content == second
        report = verify_store(store)
        assert report.problems == [] and report.counts["versions"] == 2
    finally:
        store.close()


def _health(url: str) -> httpx.Response:
    try:
        return httpx.get(f"{url}/healthz", timeout=10)
    except httpx.TransportError:
        return httpx.Response(599)


@pytest.mark.pg
@pytest.mark.slow
def test_postgres_down_answers_503_and_everything_recovers_by_itself(
    pg_exclusive: None,
    make_store_url,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The one test of the suite that takes PostgreSQL down (for a second or two),
    while no other PostgreSQL test of the suite runs (``pg_exclusive``)."""
    if pgcontrol.cluster() is None or os.geteuid() != 0:
        pytest.skip("stopping PostgreSQL needs root and pg_ctlcluster")
    db = make_store_url("pg")
    env = {"DRIFTSAFE_HOME": str(tmp_path), "DRIFTSAFE_ENCRYPTION_KEY": new_key_text()}
    writer = make_token(db, "writer", "write", env)
    one = ServeProcess(["--db", db, "--port", "0"], env)
    two = ServeProcess(["--db", db, "--port", "0"], env)
    a = httpx.Client(base_url=one.url, auth=("tf", writer), timeout=30)
    b = httpx.Client(base_url=two.url, auth=("tf", writer), timeout=30)
    try:
        for url in (one.url, two.url):
            assert _health(url).json()["lock_notifications"] == "listening"
        with pgcontrol.stopped():
            for client in (a, b):
                down = client.get("/v1/states/app")
                assert down.status_code == 503, down.text
                assert down.headers["Retry-After"] == "2"
                assert down.json()["error"]["code"] == "store_unavailable"
                lock = client.request("LOCK", "/v1/locks/app", json=info("X"))
                assert lock.status_code == 503 and "Retry-After" in lock.headers
            health = _health(one.url)
            assert health.status_code == 503
            assert health.json()["status"] == "unavailable"
            assert "store unavailable" in health.json()["error"]
        # Back up: each server reconnects by itself (pool and listener), no restart.
        for url in (one.url, two.url):
            wait_until(
                lambda url=url: (
                    _health(url).status_code == 200
                    and _health(url).json().get("lock_notifications") == "listening"
                ),
                what=f"{url} to recover",
            )
        assert a.request("LOCK", "/v1/locks/app", json=info("H")).status_code == 200
        got: dict[str, httpx.Response] = {}
        waiter = threading.Thread(
            target=lambda: got.setdefault(
                "r",
                b.request("LOCK", "/v1/locks/app", params={"wait": "30s"}, json=info("W")),
            )
        )
        waiter.start()
        time.sleep(0.5)
        assert a.post("/v1/states/app", params={"ID": "H"}, content=state(1)).status_code == 200
        assert a.request("UNLOCK", "/v1/locks/app", json=info("H")).status_code == 200
        waiter.join(40)
        assert got["r"].status_code == 200 and got["r"].json()["ID"] == "W"
        assert b.post("/v1/states/app", params={"ID": "W"}, content=state(2)).status_code == 200
    finally:
        pgcontrol.ensure_running()
        a.close()
        b.close()
        one.stop()
        two.stop()
