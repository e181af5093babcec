"""Records the store hands out: plain frozen dataclasses, JSON-ready via ``to_json``."""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any

from driftsafe.timestamps import rfc3339_or_none

SCOPES = ("read", "write", "admin")

ENCRYPTED_NOT_SCANNED = "encrypted by the client: not scanned"
RULES_SKIPPED = (
    "serial and lineage rules skipped: the state is encrypted by the client (OpenTofu), "
    "so the server cannot read them; it numbers the versions itself"
)
# A token's last use is written at most this often (seconds), so a busy token costs
# one small write a minute, not one per request.
LAST_USED_EVERY = 60.0


@dataclass(frozen=True)
class TokenRecord:
    """One token secret. Rotation gives a name a new record; the old one's
    ``revoked_at`` is then the end of its grace period (maybe still ahead)."""

    id: str
    name: str
    scope: str
    workspace: str  # a glob such as ``team/*`` or ``*``; ``*`` also crosses ``/``
    created_at: float
    revoked_at: float | None = None
    expires_at: float | None = None
    last_used_at: float | None = None

    def revoked(self, now: float | None = None) -> bool:
        when = time.time() if now is None else now
        return self.revoked_at is not None and self.revoked_at <= when

    def expired(self, now: float | None = None) -> bool:
        when = time.time() if now is None else now
        return self.expires_at is not None and self.expires_at <= when

    def status(self, now: float | None = None) -> str:
        """``active``, ``retiring`` (rotated, in its grace period), ``revoked`` or
        ``expired``."""
        when = time.time() if now is None else now
        if self.revoked(when):
            return "revoked"
        if self.expired(when):
            return "expired"
        return "retiring" if self.revoked_at is not None else "active"

    def allows(self, scope: str, workspace: str | None = None) -> bool:
        """True when this token is live and its scope covers ``scope`` and its glob
        ``workspace``. The glob is fnmatch's: ``*`` matches ``/`` too, so
        ``myapp/*`` covers ``myapp/a/b/c``."""
        if self.revoked() or self.expired():
            return False
        if SCOPES.index(self.scope) < SCOPES.index(scope):
            return False
        return workspace is None or fnmatch.fnmatchcase(workspace, self.workspace)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "workspace": self.workspace,
            "status": self.status(),
            "created_at": rfc3339_or_none(self.created_at),
            "expires_at": rfc3339_or_none(self.expires_at),
            "revoked_at": rfc3339_or_none(self.revoked_at),
            "last_used_at": rfc3339_or_none(self.last_used_at),
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
    # True when this answers a retried request (a lost response, resent): the LOCK found
    # the lock already its own, or the UNLOCK found it already released by this ID.
    retry: bool = False

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
