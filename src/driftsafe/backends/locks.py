"""``driftsafe lock status|unlock DIR``: the lock of a Terraform root's own backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftsafe.backends.adapters import adapter_for
from driftsafe.backends.base import HeldLock, LockState
from driftsafe.backends.config import current_workspace, read_backend
from driftsafe.backends.http import HttpBackend
from driftsafe.durations import format_duration
from driftsafe.errors import BackendError

# What breaking a lock means where the backend does not fence stale writers.
UNFENCED = (
    "this backend does not fence: if the holder is still running, its next write "
    "replaces any newer state. Make sure it is dead, then re-plan before applying"
)


def is_root_dir(arg: str) -> bool:
    """True when ``arg`` names a Terraform root (a directory with .tf files), not a
    driftsafe workspace name."""
    path = Path(arg).expanduser()
    return path.is_dir() and (any(path.glob("*.tf")) or any(path.glob("*.tf.json")))


@dataclass(frozen=True)
class RootLock:
    root: Path
    backend: str
    description: str
    state: LockState

    def to_json(self, *, max_age: float | None) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "description": self.description,
            **self.state.to_json(max_age=max_age),
        }


def root_lock(root: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> RootLock:
    """Who holds the lock of the state that ``root`` uses, as its backend records it."""
    config = read_backend(root)
    adapter = adapter_for(config, env=env)
    workspace = (
        adapter.workspace
        if isinstance(adapter, HttpBackend)
        else current_workspace(config.root, env)
    )
    return RootLock(config.root, config.type, adapter.describe(), adapter.read_lock(workspace))


@dataclass(frozen=True)
class Released:
    lock: HeldLock
    how: str
    warning: str


def unlock_root(
    root: str | os.PathLike[str],
    *,
    if_stale: bool,
    max_age: float,
    env: Mapping[str, str] | None = None,
) -> tuple[RootLock, Released]:
    """Break the lock of ``root``'s state; with ``if_stale`` only one older than
    ``max_age`` seconds (a fresh lock may belong to a run that is still applying)."""
    found = root_lock(root, env=env)
    state = found.state
    held = state.held
    if not state.records_holder:
        pid = held.facts.get("session_pid") if held else None
        hint = (
            f"; the lock is held by PostgreSQL session {pid}: once you are sure that run is "
            f"dead, end it with SELECT pg_terminate_backend({pid})"
            if pid
            else ""
        )
        raise BackendError(f"{state.note}{hint}")
    if held is None:
        raise BackendError(f"{state.workspace}: not locked ({state.where}); nothing to release")
    age = held.age()
    if if_stale:
        if age is None:
            raise BackendError(
                f"the age of lock {held.id} cannot be known (its LockInfo has no Created): "
                "refusing --if-stale; break it without --if-stale once its holder is dead"
            )
        if age <= max_age:
            raise BackendError(
                f"lock {held.id} held by {held.info.get('Who')} is fresh "
                f"({format_duration(age)} old, --max-age {format_duration(max_age)}): a run "
                "may still be applying; refusing to break it"
            )
    adapter = adapter_for(read_backend(root), env=env)
    how = adapter.break_lock(state.workspace, held.id)
    warning = (
        "the holder's next write is rejected (fenced): re-plan before applying"
        if isinstance(adapter, HttpBackend) and adapter.server
        else UNFENCED
    )
    return found, Released(held, how, warning)
