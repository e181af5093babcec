"""Stores on a real SQLite file or a fresh PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest


@pytest.fixture
def new_store_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    schemas: list[tuple[str, str]] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'st-{uuid.uuid4().hex[:6]}.db'}"
        pg_url: str = request.getfixturevalue("pg_url")
        import psycopg

        schema = f"s_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        schemas.append((pg_url, schema))
        sep = "&" if "?" in pg_url else "?"
        return f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"

    yield make
    import psycopg

    for pg_url, schema in schemas:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, new_store_url: Callable[[str], str]) -> str:
    return new_store_url(request.param)
