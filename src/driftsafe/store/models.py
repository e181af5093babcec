"""Records the store hands out: plain frozen dataclasses, JSON-ready via ``to_json``."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from driftsafe.timestamps import rfc3339_or_none

SCOPES = ("read", "write", "admin")

ENCRYPTED_NOT_SCANNED = "encrypted by the client: not scanned"
RULES_SKIPPED = (
    "serial and lineage rules skipped: the state is encrypted by the client (OpenTofu), "
    "so the server cannot read them; it numbers the versions itself"
)


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    scope: str
    workspace: str  # a glob such as ``team/*`` or ``*``
    created_at: float
    revoked_at: float | None = None

    def allows(self, scope: str, workspace: str | None = None) -> bool:
        """True when this token's scope covers ``scope`` and its glob ``workspace``."""
        if self.revoked_at is not None:
            return False
        if SCOPES.index(self.scope) < SCOPES.index(scope):
            return False
        return workspace is None or fnmatch.fnmatchcase(workspace, self.workspace)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "workspace": self.workspace,
            "created_at": rfc3339_or_none(self.created_at),
            "revoked_at": rfc3339_or_none(self.revoked_at),
        }


@dataclass(frozen=True)
class LockRecord:
    """The holder's LockInfo as Terraform sent it, plus what the server saw."""

    workspace: str
    id: str
    operation: str
    who: str
    info: str
    version: str
    created: str
    path: str
    token: str | None
    remote_addr: str | None
    acquired_at: float

    def lock_info(self) -> dict[str, str]:
        """The bare LockInfo JSON Terraform unmarshals from a 423/409 body."""
        return {
            "ID": self.id,
            "Operation": self.operation,
            "Info": self.info,
            "Who": self.who,
            "Version": self.version,
            "Created": self.created,
            "Path": self.path,
        }

    def to_json(self, *, now: float, stale_after: float) -> dict[str, Any]:
        age = max(0.0, now - self.acquired_at)
        return {
            "id": self.id,
            "operation": self.operation,
            "who": self.who,
            "info": self.info,
            "version": self.version,
            "created": self.created,
            "path": self.path,
            "token": self.token,
            "remote_addr": self.remote_addr,
            "acquired_at": rfc3339_or_none(self.acquired_at),
            "age_seconds": round(age, 3),
            "stale": age > stale_after,
        }


@dataclass(frozen=True)
class VersionRecord:
    workspace: str
    serial: int
    lineage: str
    sha256: str
    size: int
    resources: int
    created_at: float
    writer_token: str | None
    writer_who: str | None
    lock_id: str | None
    findings: list[dict[str, Any]] = field(default_factory=list)
    restored_from: int | None = None
    # A large state is scanned for secrets after the write commits (see the server).
    scan_pending: bool = False
    # The format of an OpenTofu client-side encrypted envelope ("opentofu-encrypted-v0"),
    # None for a plain state. Such a version's serial is the server's own numbering.
    encrypted_by_client: str | None = None

    @property
    def scan(self) -> str:
        if self.encrypted_by_client:
            return ENCRYPTED_NOT_SCANNED
        return "pending" if self.scan_pending else "done"

    @property
    def rules(self) -> str:
        if self.encrypted_by_client:
            return RULES_SKIPPED
        return "serial and lineage checked"

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "lineage": self.lineage,
            "sha256": self.sha256,
            "size": self.size,
            "resources": self.resources,
            "created_at": rfc3339_or_none(self.created_at),
            "writer": {"token": self.writer_token, "who": self.writer_who},
            "lock_id": self.lock_id,
            "findings": list(self.findings),
            "restored_from": self.restored_from,
            "scan": self.scan,
            "format": self.encrypted_by_client or "tfstate",
            "rules": self.rules,
        }


@dataclass(frozen=True)
class WorkspaceSummary:
    name: str
    latest_serial: int | None
    versions: int
    locked: bool
    updated_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_serial": self.latest_serial,
            "versions": self.versions,
            "locked": self.locked,
            "updated_at": rfc3339_or_none(self.updated_at),
        }


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: float
    action: str
    workspace: str | None
    token: str | None
    remote_addr: str | None
    outcome: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": rfc3339_or_none(self.at),
            "action": self.action,
            "workspace": self.workspace,
            "token": self.token,
            "remote_addr": self.remote_addr,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Actor:
    """Who performs a store operation: recorded on versions, locks and audit events."""

    token: str | None = None
    remote_addr: str | None = None
    admin: bool = False


@dataclass(frozen=True)
class LockResult:
    acquired: bool
    lock: LockRecord  # ours when acquired, the holder's otherwise
