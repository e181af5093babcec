"""Other Terraform backends (s3 with a lockfile or DynamoDB, pg, http, local): their
locks, versions and settings, and ``driftsafe backend check``, which measures what a
backend guarantees with real Terraform runs on a scratch workspace.

Other packages import only the names below.
"""

from driftsafe.backends.adapters import SUPPORTED, adapter_for
from driftsafe.backends.base import Adapter, HeldLock, LockState, Measured, parse_go_time
from driftsafe.backends.check import lock_info_from_output, run_backend_check, secret_verdict
from driftsafe.backends.config import BackendConfig, current_workspace, read_backend
from driftsafe.backends.locks import Released, RootLock, is_root_dir, root_lock, unlock_root
from driftsafe.backends.moto import MotoServer, make_bucket, make_lock_table
from driftsafe.backends.pg import NO_HOLDER
from driftsafe.backends.report import (
    CHECK_IDS,
    SCHEMA_VERSION,
    CheckReport,
    CheckResult,
    Evidence,
    render_markdown,
    render_table,
)
from driftsafe.backends.s3 import S3Backend

__all__ = [
    "CHECK_IDS",
    "NO_HOLDER",
    "SCHEMA_VERSION",
    "SUPPORTED",
    "Adapter",
    "BackendConfig",
    "CheckReport",
    "CheckResult",
    "Evidence",
    "HeldLock",
    "LockState",
    "Measured",
    "MotoServer",
    "Released",
    "RootLock",
    "S3Backend",
    "adapter_for",
    "current_workspace",
    "is_root_dir",
    "lock_info_from_output",
    "make_bucket",
    "make_lock_table",
    "parse_go_time",
    "read_backend",
    "render_markdown",
    "render_table",
    "root_lock",
    "run_backend_check",
    "secret_verdict",
    "unlock_root",
]
