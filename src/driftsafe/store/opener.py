"""Open a store from the settings: its URL, its key file, its migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from driftsafe.errors import ConfigError
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


def _shown(url: str) -> str:
    return make_url(normalize_url(url)).render_as_string(hide_password=True)


def open_store(
    settings: Settings,
    url: str | None = None,
    *,
    create_key: bool = True,
    create: bool = True,
    notices: list[str] | None = None,
) -> SqlStore:
    """Open (creating or migrating) the store at ``url`` or ``settings.db_url``.

    A newly created key file is reported through ``notices`` so the caller can tell
    the user where the key that protects every state now lives. ``create=False``
    (read-only commands) refuses to create anything: no database file, no tables,
    no key file.
    """
    target = url or settings.db_url
    if not create:
        create_key = False
        path = sqlite_path(normalize_url(target))
        if path is not None and not path.is_file():
            raise ConfigError(
                f"no driftsafe store at {path}: nothing to read (a server, or "
                "`driftsafe token create`, creates it; or give --db / DRIFTSAFE_DB)"
            )
    cipher, notice = load_cipher(
        key=settings.encryption_key, key_file=default_key_file(settings, target), create=create_key
    )
    if notice and notices is not None:
        notices.append(notice)
    store = SqlStore(target, cipher, retention=settings.retention)
    try:
        if not create and store.schema_version() == 0:
            raise ConfigError(f"no driftsafe store in {_shown(target)}: its tables do not exist")
        store.initialize()
    except BaseException:
        store.close()
        raise
    return store
