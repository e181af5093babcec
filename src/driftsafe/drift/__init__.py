"""Drift control: the drift check, the drift report, resolution, alerts, CI.

Entry points (other packages import only the names below):
- ``run_check(roots, engine=..., targets=DeliveryTargets(...)) -> CheckRun``: the whole
  ``driftsafe drift check`` (plans, report, alerts, exit code);
  ``check_roots(roots, engine=...) -> list[RootReport]`` for the reports alone
- ``resolve_drift(root, codify=[...], revert=[...], engine=...) -> Resolution``
- ``deliver(reports, targets, generated_at=...) -> list[Delivery]``; ``list_history``
- ``init_ci(directory, ...)`` for ``driftsafe ci init``
"""

from driftsafe.drift.check import check_roots
from driftsafe.drift.ci import CiOptions, init_ci
from driftsafe.drift.delivery import CheckRun, DeliveryTargets, deliver, run_check
from driftsafe.drift.ignore import IgnoreRules, load_ignore
from driftsafe.drift.model import (
    SCHEMA_VERSION,
    DriftFinding,
    PlannedChange,
    RootReport,
    overall_exit_code,
    report_json,
)
from driftsafe.drift.notify import Delivery, list_history
from driftsafe.drift.render import render_drift_markdown, render_drift_table
from driftsafe.drift.resolve import Resolution, resolve_drift

__all__ = [
    "SCHEMA_VERSION",
    "CheckRun",
    "CiOptions",
    "Delivery",
    "DeliveryTargets",
    "DriftFinding",
    "IgnoreRules",
    "PlannedChange",
    "Resolution",
    "RootReport",
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
]
