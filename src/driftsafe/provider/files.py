"""Filesystem helpers shared by the lab resources: atomic writes, modes, key = value files."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")

MODE_RE = re.compile(r"^0[0-7]{3}$")
KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def mode_error(attribute: str, mode: str | None) -> str | None:
    """A diagnostic naming ``attribute`` when ``mode`` is not like "0644", else None."""
    if mode is None or MODE_RE.match(mode):
        return None
    return (
        f'{attribute}: "{mode}" is not a valid file mode; use four octal digits '
        'with a leading zero, like "0644" or "0600"'
    )


def values_errors(attribute: str, values: Mapping[str, str] | None) -> list[str]:
    """Keys and values that could not round-trip through a ``key = value`` file."""
    errors: list[str] = []
    for key, value in (values or {}).items():
        if not KEY_RE.match(key):
            errors.append(f'{attribute}: key "{key}" must be letters, digits, ".", "_" or "-"')
        if value is not None and ("\n" in value or "\r" in value):
            errors.append(f'{attribute}["{key}"]: value must be a single line')
        elif value is not None and value != value.strip():
            # Read strips around "=", so padding would show as drift forever.
            errors.append(f'{attribute}["{key}"]: value must not start or end with spaces')
    return errors


def render_values(values: Mapping[str, str]) -> str:
    """Sorted ``key = value`` lines, so the file is stable whatever the map order."""
    return "".join(f"{key} = {values[key]}\n" for key in sorted(values))


def parse_values(text: str) -> dict[str, str]:
    """The ``key = value`` pairs of a config file; blank, comment and other lines are skipped.

    A hand edit changes both the content and the parsed values, so drift shows
    on the very key that was edited (``values["max_connections"]``).
    """
    parsed: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        parsed[key.strip()] = value.strip()
    return parsed


def file_mode(path: str) -> str:
    return f"{stat.S_IMODE(os.lstat(path).st_mode):04o}"


def write_atomic(path: str, data: bytes, mode: int) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half.

    mkstemp creates the temp file 0600, so a secret is never readable by others,
    not even for a moment; the final mode is set before the rename.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lab-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def remove_file(path: str) -> None:
    """Delete ``path``; already gone is fine (someone removed it by hand)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def present(value: T | None, what: str) -> T:
    """``value``, which pyvider guarantees for this operation; fail loudly if not."""
    if value is None:
        from pyvider.exceptions import ResourceError

        raise ResourceError(f"internal error: no {what} for this operation")
    return value
