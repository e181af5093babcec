"""Real backends for the backend tests, each started by the suite: moto (S3 and
DynamoDB) on a loopback port, driftsafe's server on SQLite or PostgreSQL, Terraform's
pg backend on the machine's PostgreSQL, and the local backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backendroots import HTTP_BLOCK, LOCAL_BLOCK, PG_BLOCK, s3_root, write_root

from driftsafe.backends import MotoServer
from driftsafe.backends.moto import TEST_CREDENTIALS
from driftsafe.server.serving import RunningServer, start_server
from driftsafe.settings import Settings
from driftsafe.store.crypto import new_key_text


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto server per test worker; every test makes its own bucket and table."""
    server = MotoServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Terraform (a child process) and boto3 (here) both read these.
    for key, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def ds_server(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], tuple[RunningServer, str]]]:
    """``start(kind)`` -> (a driftsafe server on ``sqlite`` or ``pg``, its admin token)."""
    started: list[RunningServer] = []

    def start(kind: str) -> tuple[RunningServer, str]:
        make_store_url = request.getfixturevalue("make_store_url")
        server_settings = settings.with_(encryption_key=new_key_text(), home=tmp_path / "home")
        running = start_server(server_settings, db=make_store_url(kind))
        started.append(running)
        return running, running.store.create_token("check-admin", "admin")[1]

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def make_root(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str], Path]:
    """``make(kind)`` -> a Terraform root on a fresh backend of ``kind`` (see ROOTS)."""

    def make(kind: str) -> Path:
        root = tmp_path / kind
        if kind.startswith("s3-"):
            moto: MotoServer = request.getfixturevalue("moto")
            path, _bucket = s3_root(
                root, moto.url, lockfile=kind == "s3-lockfile", table=kind == "s3-dynamodb"
            )
            return path
        if kind.startswith("driftsafe-"):
            running, admin = request.getfixturevalue("ds_server")(kind.split("-")[1])
            monkeypatch.setenv("TF_HTTP_PASSWORD", admin)
            return write_root(root, HTTP_BLOCK.format(url=running.url, ws="team/app"))
        if kind == "tf-pg":
            conn, schema = request.getfixturevalue("tf_pg_conn")
            return write_root(root, PG_BLOCK.format(conn=conn, schema=schema))
        if kind == "local":
            return write_root(root, LOCAL_BLOCK)
        raise AssertionError(kind)

    return make


@pytest.fixture
def tf_pg_conn(pg_url: str) -> Iterator[tuple[str, str]]:
    """(conn_str, schema) for Terraform's pg backend: a schema of its own, dropped after."""
    import psycopg

    schema = f"tfpg_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}sslmode=disable", schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
