"""Key rotation: re-encrypt the store, then make the new key the one in use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftsafe.errors import ConfigError
from driftsafe.settings import Settings
from driftsafe.store.crypto import Cipher, decode_key, new_key_text, write_key_file
from driftsafe.store.opener import default_key_file, open_store


@dataclass(frozen=True)
class RotateResult:
    versions: int
    key_id: str
    key_file: Path
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "key_id": self.key_id,
            "key_file": str(self.key_file),
            "message": self.message,
        }


def rotate_key(
    settings: Settings, *, db: str | None = None, new_key_file: Path | None = None
) -> RotateResult:
    """Re-encrypt every version under a new key.

    The new key is written to disk *before* the re-encryption commits, so a crash at
    any point leaves a key on disk that opens the store (the old key until commit)."""
    current_file = default_key_file(settings, db)
    if new_key_file is None and settings.encryption_key:
        raise ConfigError(
            "the key comes from DRIFTSAFE_ENCRYPTION_KEY: pass --new-key-file, then set "
            "DRIFTSAFE_ENCRYPTION_KEY to that file's content"
        )
    store = open_store(settings, db, create_key=False)
    try:
        staged = new_key_file or current_file.with_name(current_file.name + ".new")
        if not staged.exists():
            write_key_file(staged, new_key_text())
        new = Cipher(decode_key(staged.read_text(), str(staged)))
        if new.key_id == store.cipher.key_id:
            raise ConfigError(f"{staged} holds the key already in use: nothing to rotate")
        count = store.rotate_key(new)
    finally:
        store.close()
    if new_key_file is not None:
        message = (
            f"the store now needs the key in {new_key_file}: point DRIFTSAFE_ENCRYPTION_KEY_FILE "
            "at it (or set DRIFTSAFE_ENCRYPTION_KEY to its content) and restart the servers"
        )
        return RotateResult(count, new.key_id, new_key_file, message)
    old = current_file.with_name(current_file.name + ".old")
    os.replace(current_file, old)
    os.replace(staged, current_file)
    message = f"new key in {current_file} (old key kept in {old}); restart the servers"
    return RotateResult(count, new.key_id, current_file, message)
