"""Real servers on port 0 over real stores (an SQLite file, a fresh PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from srvhelpers import Srv

from driftsafe.server.serving import start_server
from driftsafe.settings import Settings
from driftsafe.store.crypto import new_key_text


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
