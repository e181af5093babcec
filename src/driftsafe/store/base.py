"""The ``Store`` protocol: what the server and the commands need from a store.

``SqlStore`` (SQLite or PostgreSQL through SQLAlchemy Core) is the implementation;
the server is written against this protocol only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from driftsafe.state import EncryptedState, TfState
from driftsafe.store.crypto import Cipher
from driftsafe.store.models import (
    Actor,
    AuditEvent,
    LockRecord,
    LockResult,
    TokenRecord,
    VersionRecord,
    WorkspaceSummary,
)
from driftsafe.store.versions import Sealed


class Store(Protocol):
    url: str
    cipher: Cipher
    retention: int

    @property
    def database(self) -> str:
        """``sqlite`` or ``postgresql``."""
        ...

    def close(self) -> None: ...
    def ping(self) -> None: ...
    def schema_version(self) -> int: ...

    # tokens
    def create_token(
        self, name: str, scope: str, workspace: str = "*"
    ) -> tuple[TokenRecord, str]: ...
    def list_tokens(self) -> list[TokenRecord]: ...
    def revoke_token(self, name: str) -> TokenRecord: ...
    def authenticate(self, secret: str) -> TokenRecord | None: ...

    # versions
    def latest_state(self, workspace: str) -> tuple[VersionRecord, bytes] | None: ...
    def get_version(self, workspace: str, serial: int) -> tuple[VersionRecord, bytes]: ...
    def list_versions(self, workspace: str, limit: int | None = None) -> list[VersionRecord]: ...
    def seal(self, workspace: str, body: bytes) -> Sealed: ...
    def write_state(
        self,
        workspace: str,
        body: bytes | Sealed,
        state: TfState | EncryptedState,
        actor: Actor,
        *,
        lock_id: str | None,
        findings: list[dict[str, Any]] | None,
    ) -> tuple[VersionRecord, bool]: ...
    def restore(self, workspace: str, serial: int, actor: Actor) -> VersionRecord: ...
    def delete_workspace(self, workspace: str, actor: Actor) -> int: ...
    def set_findings(self, workspace: str, serial: int, findings: list[dict[str, Any]]) -> None: ...
    def pending_scans(self) -> list[tuple[str, int]]: ...

    # locks
    def get_lock(self, workspace: str) -> LockRecord | None: ...
    def acquire_lock(
        self, workspace: str, info: dict[str, Any], actor: Actor, *, waiter: int | None = None
    ) -> LockResult | None: ...
    def release_lock(
        self, workspace: str, lock_id: str | None, actor: Actor, *, max_age: float | None = None
    ) -> LockRecord: ...
    def add_waiter(self, workspace: str, timeout: float) -> int: ...
    def touch_waiter(self, waiter: int) -> None: ...
    def remove_waiter(self, waiter: int) -> None: ...
    def listen(self, callback: Callable[[str], None]) -> Callable[[], None]: ...

    # workspaces, audit, drift reports
    def list_workspaces(self) -> list[WorkspaceSummary]: ...
    def record(
        self,
        action: str,
        workspace: str | None,
        actor: Actor,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None: ...
    def audit_events(self, workspace: str | None = None, limit: int = 100) -> list[AuditEvent]: ...
    def add_drift_report(
        self, workspace: str, report: dict[str, Any], actor: Actor
    ) -> tuple[int, float]: ...
    def drift_reports(
        self, workspace: str, limit: int = 50
    ) -> list[tuple[int, float, dict[str, Any]]]: ...
