"""AES-GCM encryption of state bodies at rest, and where the key comes from."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from driftsafe.errors import ConfigError, StoreError

NONCE_BYTES = 12


@dataclass(frozen=True)
class Cipher:
    """One 256-bit key. ``key_id`` (a hash prefix, not secret) is stored per row so a
    wrong key is reported as such instead of as corrupt data."""

    key: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"driftsafe-key-id:" + self.key).hexdigest()[:16]

    def encrypt(self, plaintext: bytes | bytearray, aad: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, AESGCM(self.key).encrypt(nonce, plaintext, aad.encode())

    def decrypt(self, nonce: bytes, ciphertext: bytes | bytearray, aad: str, key_id: str) -> bytes:
        if key_id != self.key_id:
            raise StoreError(
                f"data was encrypted with key {key_id}, but the configured key is "
                f"{self.key_id}: set DRIFTSAFE_ENCRYPTION_KEY or DRIFTSAFE_ENCRYPTION_KEY_FILE "
                "to the key this store was written with"
            )
        try:
            return AESGCM(self.key).decrypt(nonce, ciphertext, aad.encode())
        except InvalidTag:
            where = aad.split("\x00")[0]
            raise StoreError(
                f"stored data for {where!r} failed authentication (tampered?)"
            ) from None


def decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{source}: the key is not valid base64") from None
    if len(key) != 32:
        raise ConfigError(
            f"{source}: the key must be 32 bytes (base64 of 32 bytes), got {len(key)}"
        )
    return key


def new_key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def write_key_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the start (never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def load_cipher(*, key: str | None, key_file: Path, create: bool) -> tuple[Cipher, str | None]:
    """The cipher, and a notice to show the user when a new key file was created."""
    if key:
        return Cipher(decode_key(key, "DRIFTSAFE_ENCRYPTION_KEY")), None
    if key_file.exists():
        return Cipher(decode_key(key_file.read_text(), str(key_file))), None
    if not create:
        raise ConfigError(
            f"no encryption key: {key_file} does not exist and DRIFTSAFE_ENCRYPTION_KEY is unset"
        )
    text = new_key_text()
    try:
        write_key_file(key_file, text)
    except FileExistsError:  # another process created it first: use theirs
        return Cipher(decode_key(key_file.read_text(), str(key_file))), None
    notice = (
        f"created encryption key file {key_file} (mode 0600); back it up: "
        "without it the stored states cannot be read"
    )
    return Cipher(decode_key(text, str(key_file))), notice
