"""Open a store from the settings: its URL, its key file, its migrations."""

from __future__ import annotations

from pathlib import Path

from driftsafe.settings import Settings
from driftsafe.store.crypto import load_cipher
from driftsafe.store.database import normalize_url, sqlite_path
from driftsafe.store.sql import SqlStore


def default_key_file(settings: Settings, url: str | None = None) -> Path:
    """The key file: the configured one, else beside an SQLite file, else in home."""
    if settings.encryption_key_file is not None:
        return settings.encryption_key_file
    path = sqlite_path(normalize_url(url or settings.db_url))
    return (path.parent if path is not None else settings.home) / "driftsafe.key"


def open_store(
    settings: Settings,
    url: str | None = None,
    *,
    create_key: bool = True,
    notices: list[str] | None = None,
) -> SqlStore:
    """Open (creating or migrating) the store at ``url`` or ``settings.db_url``.

    A newly created key file is reported through ``notices`` so the caller can tell
    the user where the key that protects every state now lives.
    """
    target = url or settings.db_url
    cipher, notice = load_cipher(
        key=settings.encryption_key, key_file=default_key_file(settings, target), create=create_key
    )
    if notice and notices is not None:
        notices.append(notice)
    store = SqlStore(target, cipher, retention=settings.retention)
    try:
        store.initialize()
    except BaseException:
        store.close()
        raise
    return store
