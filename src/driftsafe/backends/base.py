"""What driftsafe reads from a Terraform backend besides Terraform's own commands: its
lock entry, its stored versions, its encryption setting; and how it breaks a lock and
removes a scratch workspace. One adapter per backend type."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from driftsafe.backends.config import BackendConfig
from driftsafe.timestamps import parse_timestamp, rfc3339

# Go's time.Time.String(), as Terraform prints Created in "Error acquiring the state
# lock": "2026-12-01 14:17:38.461033587 +0000 UTC".
_GO_STRING = re.compile(r"\s*(\S+ \S+) ([+-]\d{4})(?: \w+)?\s*")


def parse_go_time(text: str) -> float | None:
    """Seconds since the epoch of a LockInfo ``Created``: RFC 3339 as the JSON has it, or
    Go's ``time.String()`` as Terraform prints it; None if ``text`` is neither."""
    found = parse_timestamp(text or "")
    if found is None:
        go = _GO_STRING.fullmatch(text or "")
        found = parse_timestamp(f"{go.group(1)}{go.group(2)}") if go else None
    return found


@dataclass(frozen=True)
class HeldLock:
    """A lock as the backend records it: Terraform's LockInfo, when it keeps one."""

    info: dict[str, Any]  # ID, Operation, Info, Who, Version, Created, Path
    acquired_at: float | None  # when the lock was taken (LockInfo Created, or the entry's time)
    facts: dict[str, Any] = field(default_factory=dict)  # backend-specific (object, item, pid)

    @property
    def id(self) -> str:
        return str(self.info.get("ID") or "")

    def age(self, now: float | None = None) -> float | None:
        if self.acquired_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.acquired_at)

    def to_json(self, *, max_age: float | None = None) -> dict[str, Any]:
        age = self.age()
        return {
            "id": self.id,
            "who": self.info.get("Who"),
            "operation": self.info.get("Operation"),
            "info": self.info.get("Info"),
            "version": self.info.get("Version"),
            "created": self.info.get("Created"),
            "path": self.info.get("Path"),
            "acquired_at": rfc3339(self.acquired_at) if self.acquired_at else None,
            "age_seconds": None if age is None else round(age, 3),
            "stale": None if age is None or max_age is None else age > max_age,
            **self.facts,
        }


@dataclass(frozen=True)
class LockState:
    """Whether a workspace's state is locked, and by whom as far as the backend knows."""

    backend: str
    workspace: str
    where: str  # the lock entry: an S3 object, a DynamoDB item, a server URL...
    records_holder: bool  # False: the backend keeps no LockInfo (pg advisory locks)
    held: HeldLock | None
    note: str = ""

    def to_json(self, *, max_age: float | None = None) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "workspace": self.workspace,
            "where": self.where,
            "records_holder": self.records_holder,
            "locked": self.held is not None,
            "lock": self.held.to_json(max_age=max_age) if self.held else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class Measured:
    """A backend property measured from its own settings: True, False, or None (unknown)."""

    ok: bool | None
    detail: str
    evidence: str = ""


class Adapter(Protocol):
    """Everything driftsafe does to a backend outside Terraform, for one backend type."""

    config: BackendConfig

    def describe(self) -> str: ...

    def scratch_config(self, name: str) -> BackendConfig:
        """The settings of a scratch root that works on ``name`` (a workspace, or for a
        backend without workspaces, an address derived from ``name``)."""
        ...

    def read_lock(self, workspace: str) -> LockState: ...

    def break_lock(self, workspace: str, lock_id: str | None) -> str:
        """Release the lock by the backend's own means; say what was done (raise
        DriftsafeError when it cannot be done)."""
        ...

    def versions(self, workspace: str) -> list[bytes] | None:
        """Every stored version of the state readable from the backend, oldest first;
        None when this backend gives no way to list them."""
        ...

    def encryption(self, workspace: str) -> Measured: ...

    def purge(self, workspace: str) -> list[str]:
        """Remove whatever a scratch workspace left behind (objects, versions, items)."""
        ...
