"""Fixtures shared by the whole suite. Everything is real: Terraform, files, servers."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from driftsafe.engine import Engine, get_engine
from driftsafe.settings import Settings


@pytest.fixture(scope="session")
def ds_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One driftsafe home (mirror, CLI config) per test worker."""
    return tmp_path_factory.mktemp("driftsafe-home")


@pytest.fixture(scope="session")
def settings(ds_home: Path) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTSAFE_")}
    env["DRIFTSAFE_HOME"] = str(ds_home)
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Engine:
    return get_engine(settings, "embedded")


@pytest.fixture(autouse=True)
def _isolated_env(ds_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's DRIFTSAFE_* or a broken TF_CLI_CONFIG_FILE."""
    for key in list(os.environ):
        if key.startswith("DRIFTSAFE_") and key != "DRIFTSAFE_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("DRIFTSAFE_HOME", str(ds_home))
    yield


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests run on asyncio only: the server is asyncio code."""
    return "asyncio"


# PostgreSQL tests hold this file shared; the one test that stops PostgreSQL holds it
# exclusively, so no PostgreSQL test of another xdist worker runs meanwhile.
PG_LOCK_FILE = Path(tempfile.gettempdir()) / "driftsafe-pg-tests.lock"


@pytest.fixture(autouse=True)
def _pg_shared(request: pytest.FixtureRequest) -> Iterator[int | None]:
    if request.node.get_closest_marker("pg") is None:
        yield None
        return
    fd = os.open(PG_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)  # releases the lock


@pytest.fixture
def pg_exclusive(_pg_shared: int | None) -> None:
    """For a test that stops PostgreSQL (marked ``pg``): wait until no other
    PostgreSQL test runs, and keep them out until this one ends."""
    assert _pg_shared is not None, "mark the test pg"
    fcntl.flock(_pg_shared, fcntl.LOCK_EX)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The real PostgreSQL of CI (DRIFTSAFE_TEST_PG_URL); skip with a reason without it."""
    url = os.environ.get("DRIFTSAFE_TEST_PG_URL")
    if not url:
        pytest.skip("PostgreSQL tests need DRIFTSAFE_TEST_PG_URL (set by .ci/run)")
    return url


def pg_schema_url(pg_url: str, schema: str) -> str:
    """``pg_url`` with ``schema`` first on the search path."""
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def make_store_url(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], str]]:
    """``make(kind)`` -> the URL of an empty store: ``sqlite`` (a new file) or ``pg``
    (a fresh schema on the real PostgreSQL, dropped afterwards)."""
    schemas: list[tuple[str, str]] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'ds-{uuid.uuid4().hex[:6]}.db'}"
        pg_url: str = request.getfixturevalue("pg_url")
        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        schemas.append((pg_url, schema))
        return pg_schema_url(pg_url, schema)

    yield make
    if schemas:
        import psycopg

        for pg_url, schema in schemas:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def store_url(request: pytest.FixtureRequest, make_store_url: Callable[[str], str]) -> str:
    """Each test that takes it runs twice: on SQLite and on PostgreSQL."""
    return make_store_url(request.param)
