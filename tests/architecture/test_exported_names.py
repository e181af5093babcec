"""Each package's public surface, pinned (like httpx's tests/test_exported_members.py).

Changing a package's ``__all__`` is a deliberate act: update this list with it.
"""

from __future__ import annotations

import importlib
import os

import pytest

EXPORTED = {
    "state": [
        "EncryptedState",
        "SENSITIVE",
        "OutputChange",
        "ResourceChange",
        "ResourceRow",
        "SecretFinding",
        "SecretPaths",
        "StateDiff",
        "TfState",
        "ValueChange",
        "VersionMeta",
        "attribute_rows",
        "change_counts",
        "changed_paths",
        "check_write",
        "diff_bodies",
        "diff_loaded",
        "diff_states",
        "flatten",
        "instance_address",
        "iter_instances",
        "parse_body",
        "output_rows",
        "parse_state",
        "resource_rows",
        "scan_bytes",
        "scan_state",
        "scan_text",
        "sensitive_paths",
        "state_from_json",
    ],
    "store": [
        "Actor",
        "AuditEvent",
        "AuditFilter",
        "BackupResult",
        "Cipher",
        "DriftSummary",
        "LockRecord",
        "LAST_USED_EVERY",
        "LockResult",
        "Page",
        "Problem",
        "RotateResult",
        "SCOPES",
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
    ],
    "server": ["RunningServer", "create_app", "is_loopback", "serve", "start_server"],
    "drift": [
        "CheckRun",
        "CiOptions",
        "Delivery",
        "DeliveryTargets",
        "DriftFinding",
        "IgnoreRules",
        "PlannedChange",
        "Resolution",
        "RootReport",
        "SCHEMA_VERSION",
        "check_roots",
        "deliver",
        "init_ci",
        "list_history",
        "load_ignore",
        "overall_exit_code",
        "render_drift_markdown",
        "render_drift_table",
        "report_json",
        "resolve_drift",
        "run_check",
    ],
    "lab": [
        "Artifact",
        "Check",
        "DrillOutcome",
        "Evidence",
        "ReportPaths",
        "STEP_NAMES",
        "Stack",
        "Step",
        "Transcript",
        "init_stack",
        "load_transcript",
        "run_drill",
        "summary_line",
        "write_report",
    ],
    "backends": [
        "Adapter",
        "BackendConfig",
        "CHECK_IDS",
        "CheckReport",
        "CheckResult",
        "Evidence",
        "HeldLock",
        "LockState",
        "Measured",
        "MotoServer",
        "NO_HOLDER",
        "Released",
        "RootLock",
        "S3Backend",
        "SCHEMA_VERSION",
        "SUPPORTED",
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
    ],
    "engine": [
        "Engine",
        "OutputLine",
        "Process",
        "ProcessTracker",
        "RunResult",
        "get_engine",
        "passthrough",
        "redact_env",
    ],
}


@pytest.mark.parametrize("package", sorted(EXPORTED))
def test_exported_names_are_pinned(package: str) -> None:
    module = importlib.import_module(f"driftsafe.{package}")
    assert sorted(module.__all__) == sorted(EXPORTED[package])


@pytest.mark.parametrize("package", sorted(EXPORTED))
def test_every_exported_name_exists_and_is_defined_inside_the_package(package: str) -> None:
    module = importlib.import_module(f"driftsafe.{package}")
    for name in module.__all__:
        value = getattr(module, name)
        owner = getattr(value, "__module__", None)
        # Constants carry no __module__; classes and functions must be the package's own.
        if owner is not None and not isinstance(value, (str, int, tuple, frozenset)):
            assert owner.startswith(f"driftsafe.{package}"), f"{name} comes from {owner}"


@pytest.mark.parametrize("package", sorted(EXPORTED))
def test_no_exported_name_hides_a_submodule(package: str) -> None:
    # `from driftsafe.drift.resolve import ...` breaks in odd ways once the package
    # binds a function called `resolve`: names and submodules stay distinct.
    module = importlib.import_module(f"driftsafe.{package}")
    directory = module.__path__[0]
    submodules = {n.removesuffix(".py") for n in os.listdir(directory)}
    assert sorted(set(module.__all__) & submodules) == []
