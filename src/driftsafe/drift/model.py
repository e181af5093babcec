"""The drift report: findings per root, and its versioned JSON form.

The JSON shape is documented in ``docs/drift-report.md``; bump ``SCHEMA_VERSION``
whenever a field changes meaning or disappears (adding a field does not bump it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
ABSENT = "(absent)"


def fingerprint(*parts: Any) -> str:
    """A short stable hash of a finding's identity (never of a sensitive value)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class DriftFinding:
    """One drifted attribute (or one resource deleted outside Terraform).

    ``state`` is what Terraform last recorded, ``reality`` what the refresh read now,
    ``config`` what the configuration asks for; ``apply`` says what a plain apply
    would do about it: ``revert`` (back to config), ``keep`` (config already matches
    reality), ``recreate``, ``replace``, ``destroy``, ``ignore`` (no-op, e.g.
    lifecycle.ignore_changes) or ``unknown``.
    """

    address: str
    kind: str  # "changed" | "deleted"
    path: str  # attribute path like values.max_connections; "" for a whole resource
    state: Any
    reality: Any
    config: Any
    apply: str
    message: str
    sensitive: bool = False
    # False when the configuration does not set this attribute (the provider computes
    # it, e.g. a file's content rendered from its values): it follows the others.
    configured: bool = True
    resource_type: str = ""
    root: str = ""
    ignored_reason: str | None = None
    fingerprint: str = ""
    # Computed attributes of the same resource that changed with this one (a file's
    # content with the value written in it): one manual change, not several.
    computed: list[DriftFinding] = field(default_factory=list)
    # On a computed finding folded under another: the configured changes explaining it.
    explained_by: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        """The ADDR.ATTR name used by ``drift resolve``."""
        return f"{self.address}.{self.path}" if self.path else self.address

    def to_json(self) -> dict[str, Any]:
        data = {
            "fingerprint": self.fingerprint,
            "address": self.address,
            "resource_type": self.resource_type,
            "kind": self.kind,
            "path": self.path,
            "target": self.target,
            "state": self.state,
            "reality": self.reality,
            "config": self.config,
            "sensitive": self.sensitive,
            "configured": self.configured,
            "apply": self.apply,
            "message": self.message,
        }
        if self.explained_by:
            data["explained_by"] = self.explained_by
        else:
            data["computed"] = [c.to_json() for c in self.computed]
        if self.ignored_reason is not None:
            data["ignored_reason"] = self.ignored_reason
        return data


@dataclass
class PlannedChange:
    """A change the normal plan would make to a resource that did not drift."""

    address: str
    actions: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "actions": self.actions}


@dataclass
class RootReport:
    root: str  # the directory as given
    name: str  # a short stable label (used for issues, branches, workspaces)
    workspace: str | None = None  # driftsafe server workspace, from the http backend
    status: str = "clean"  # "clean" | "drift" | "error"
    error: dict[str, Any] | None = None
    findings: list[DriftFinding] = field(default_factory=list)
    ignored: list[DriftFinding] = field(default_factory=list)
    planned_changes: list[PlannedChange] = field(default_factory=list)
    terraform_version: str | None = None
    checked_at: str = ""
    duration_seconds: float = 0.0
    terraform_seconds: float = 0.0
    # "normal" (one plan), "refresh-only-evidence" or "refresh-only-fallback"
    plan_mode: str = "normal"
    # The normal plan's error when the drift came from a refresh-only fallback.
    normal_plan_error: dict[str, Any] | None = None
    runs: list[Any] = field(default_factory=list)  # RunResult of every command (evidence)
    # `show -json` of the plan whose resource_drift was read (the normal plan itself
    # unless a refresh-only plan ran), and of the normal plan (None if it failed).
    refresh_plan: dict[str, Any] | None = None
    normal_plan: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> str:
        """Identity of the whole drift of this root: same set of findings, same print."""
        return fingerprint(self.name, sorted(f.fingerprint for f in self.findings))

    @property
    def exit_code(self) -> int:
        return {"clean": 0, "drift": 2}.get(self.status, 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "root": self.root,
            "name": self.name,
            "workspace": self.workspace,
            "status": self.status,
            "error": self.error,
            "fingerprint": self.fingerprint if self.findings else None,
            "terraform_version": self.terraform_version,
            "checked_at": self.checked_at,
            "duration_seconds": round(self.duration_seconds, 3),
            "terraform_seconds": round(self.terraform_seconds, 3),
            "findings": [f.to_json() for f in self.findings],
            "ignored": [f.to_json() for f in self.ignored],
            "planned_changes": [c.to_json() for c in self.planned_changes],
            "plan_mode": self.plan_mode,
            "normal_plan_error": self.normal_plan_error,
        }


def overall_exit_code(reports: list[RootReport]) -> int:
    """1 if any root could not be checked, else 2 if any drifted, else 0."""
    codes = {r.exit_code for r in reports}
    if 1 in codes:
        return 1
    return 2 if 2 in codes else 0


def report_json(reports: list[RootReport], *, generated_at: str) -> dict[str, Any]:
    from driftsafe import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "tool": f"driftsafe {__version__}",
        "generated_at": generated_at,
        "exit_code": overall_exit_code(reports),
        "summary": {
            "roots": len(reports),
            "clean": sum(r.status == "clean" for r in reports),
            "drift": sum(r.status == "drift" for r in reports),
            "error": sum(r.status == "error" for r in reports),
            "findings": sum(len(r.findings) for r in reports),
            "ignored": sum(len(r.ignored) for r in reports),
        },
        "roots": [r.to_json() for r in reports],
    }
