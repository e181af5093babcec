"""A real state server on port 0, for the signal tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from enginehelpers import LockServer

from driftsafe.server.serving import start_server
from driftsafe.settings import Settings
from driftsafe.store.crypto import new_key_text


@pytest.fixture
def lock_server(settings: Settings, tmp_path: Path) -> Iterator[LockServer]:
    server_settings = settings.with_(encryption_key=new_key_text(), home=tmp_path / "srv-home")
    running = start_server(server_settings, db=f"sqlite:///{tmp_path / 'state.db'}")
    try:
        admin = running.store.create_token("admin", "admin")[1]
        writer = running.store.create_token("writer", "write")[1]
        yield LockServer(running, admin, writer)
    finally:
        running.stop()
