"""The app in-process (``app_srv``) or a real server on port 0 (``srv``), over real
stores (an SQLite file, a fresh PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from srvhelpers import AppSrv, Srv, lifespan

from driftsafe.server.app import create_app
from driftsafe.server.serving import start_server
from driftsafe.settings import Settings
from driftsafe.store import open_store
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


@pytest.fixture
async def app_srv(server_settings: Settings, store_url: str) -> AsyncIterator[AppSrv]:
    """For route tests: the app ``driftsafe serve`` runs, in this process, inside its
    lifespan (wake-up hub bound, background scans on), with no socket in between."""
    store = open_store(server_settings, store_url)
    try:
        admin = store.create_token("admin", "admin")[1]
        writer = store.create_token("writer", "write")[1]
        reader = store.create_token("reader", "read")[1]
        app = create_app(server_settings, store)
        served = AppSrv(app, store, admin, writer, reader, store_url)
        async with lifespan(app):
            try:
                yield served
            finally:
                await served.aclose()
    finally:
        store.close()
