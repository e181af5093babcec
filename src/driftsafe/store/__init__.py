"""Where driftsafe keeps state versions, locks, tokens, audit events and drift reports.

``open_store(settings)`` returns the SQL store (SQLite by default, PostgreSQL for a
team running several servers), migrated and with its encryption key checked.
Other packages import only the names below.
"""

from driftsafe.store.backup import BackupResult, backup_database
from driftsafe.store.base import Store
from driftsafe.store.crypto import Cipher, load_cipher, new_key_text
from driftsafe.store.models import (
    LAST_USED_EVERY,
    SCOPES,
    Actor,
    AuditEvent,
    LockRecord,
    LockResult,
    TokenRecord,
    VersionRecord,
    WorkspaceSummary,
)
from driftsafe.store.opener import default_key_file, open_store
from driftsafe.store.queries import (
    AuditFilter,
    DriftSummary,
    Page,
    VersionInfo,
    VersionRow,
    WorkspaceRow,
)
from driftsafe.store.rotate import RotateResult, rotate_key
from driftsafe.store.sessions import UiSession
from driftsafe.store.sql import SqlStore
from driftsafe.store.verify import Problem, VerifyReport, verify_database, verify_store

__all__ = [
    "LAST_USED_EVERY",
    "SCOPES",
    "Actor",
    "AuditEvent",
    "AuditFilter",
    "BackupResult",
    "Cipher",
    "DriftSummary",
    "LockRecord",
    "LockResult",
    "Page",
    "Problem",
    "RotateResult",
    "SqlStore",
    "Store",
    "TokenRecord",
    "UiSession",
    "VerifyReport",
    "VersionInfo",
    "VersionRecord",
    "VersionRow",
    "WorkspaceRow",
    "WorkspaceSummary",
    "backup_database",
    "default_key_file",
    "load_cipher",
    "new_key_text",
    "open_store",
    "rotate_key",
    "verify_database",
    "verify_store",
]
