"""Terraform's ``local`` backend: a state file, its ``.backup``, and an fcntl lock on it
held by the running process (with the holder's LockInfo in ``.<file>.lock.info``)."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from driftsafe.backends.base import HeldLock, LockState, Measured, parse_go_time
from driftsafe.backends.config import BackendConfig
from driftsafe.errors import BackendError


@dataclass
class LocalBackend:
    config: BackendConfig
    cwd: Path = field(default_factory=Path)

    def __post_init__(self) -> None:
        if self.cwd == Path():
            self.cwd = self.config.root

    def state_path(self, workspace: str) -> Path:
        if workspace == "default":
            return self.cwd / str(self.config.get("path", "terraform.tfstate"))
        base = self.cwd / str(self.config.get("workspace_dir", "terraform.tfstate.d"))
        return base / workspace / "terraform.tfstate"

    def describe(self) -> str:
        return f"local backend (state files under {self.cwd})"

    def scratch_config(self, name: str) -> BackendConfig:
        return self.config

    def read_lock(self, workspace: str) -> LockState:
        path = self.state_path(workspace)
        info_file = path.parent / f".{path.name}.lock.info"
        held = None
        if path.is_file() and _fcntl_held(path):
            try:
                info = json.loads(info_file.read_text())
            except (OSError, ValueError):
                info = {}
            held = HeldLock(info, parse_go_time(str(info.get("Created", ""))), {"file": str(path)})
        note = (
            "a local lock is an fcntl lock held by the running process: it ends with that "
            "process, and another process cannot release it"
        )
        return LockState("local", workspace, f"fcntl lock on {path}", True, held, note)

    def break_lock(self, workspace: str, lock_id: str | None) -> str:
        raise BackendError(
            "a local state lock belongs to the process that holds it (fcntl): it is "
            "released only when that process ends"
        )

    def versions(self, workspace: str) -> list[bytes] | None:
        path = self.state_path(workspace)
        backup = path.with_name(path.name + ".backup")
        return [p.read_bytes() for p in (backup, path) if p.is_file() and p.stat().st_size]

    def encryption(self, workspace: str) -> Measured:
        return Measured(
            None,
            "not knowable from here: the local backend writes plaintext JSON files; "
            "whether the disk is encrypted is outside Terraform's settings",
        )

    def purge(self, workspace: str) -> list[str]:
        return []


def _fcntl_held(path: Path) -> bool:
    """True when another process holds Terraform's write lock on ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            # A read lock conflicts with Terraform's write lock; ours is gone on close.
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        return False
    finally:
        os.close(fd)
