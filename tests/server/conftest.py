"""Real servers on port 0 over real stores (an SQLite file, a fresh PostgreSQL schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from srvhelpers import Srv

from driftsafe.server.run import start_server
from driftsafe.settings import Settings
from driftsafe.store.crypto import new_key_text


def pg_schema_url(pg_url: str, schema: str) -> str:
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def make_store_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """``make(kind)`` -> a URL of an empty store: ``sqlite`` or ``pg`` (own schema)."""
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
    import psycopg

    for pg_url, schema in schemas:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def store_url(request: pytest.FixtureRequest, make_store_url: object) -> str:
    return make_store_url(request.param)  # type: ignore[operator,no-any-return]


@pytest.fixture
def server_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.with_(encryption_key=new_key_text(), home=tmp_path / "home")


@pytest.fixture
def srv(server_settings: Settings, store_url: str) -> Iterator[Srv]:
    running = start_server(server_settings, db=store_url)
    try:
        store = running.store
        admin = store.create_token("admin", "admin")[1]
        writer = store.create_token("writer", "write")[1]
        reader = store.create_token("reader", "read")[1]
        yield Srv(running, admin, writer, reader, store_url)
    finally:
        running.stop()
