"""The result of ``driftsafe backend check``: one line per guarantee, with the captured
output that proves it. JSON schema 1 is documented in docs/backends.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftsafe.timestamps import rfc3339

SCHEMA_VERSION = 1

# The fixed check ids, in the order they run and are reported.
CHECK_IDS = (
    "lock-excludes",
    "lock-names-holder",
    "lock-timeout-waits",
    "stale-lock-visible",
    "force-unlock-works",
    "stale-writer-fenced",
    "versions-kept",
    "older-serial-refused",
    "encrypted-at-rest",
    "secret-free",
)

TITLES = {
    "lock-excludes": "Two overlapping applies: the second is refused",
    "lock-names-holder": "The refusal names the holder (Who, Operation, ID)",
    "lock-timeout-waits": "An apply with -lock-timeout waits and then succeeds",
    "stale-lock-visible": "A crashed holder's lock stays, and shows its holder",
    "force-unlock-works": "terraform force-unlock releases a stale lock",
    "stale-writer-fenced": "A resumed stale holder cannot replace a newer state",
    "versions-kept": "Every write is kept as a version that can be read back",
    "older-serial-refused": "state push -force of an older serial is refused",
    "encrypted-at-rest": "The backend encrypts state at rest (its own setting)",
    "secret-free": "No stored version holds a secret (driftsafe's secret scan)",
}


@dataclass(frozen=True)
class Evidence:
    """A command (or a read of the backend) and what came back."""

    title: str
    command: str
    exit_code: int | None
    output: str
    seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "command": self.command,
            "exit_code": self.exit_code,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "output": self.output,
        }


@dataclass
class CheckResult:
    id: str
    ok: bool | None
    detail: str
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "ok", False: "MISSING", None: "n/a"}[self.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ok": self.ok,
            "detail": self.detail,
            "evidence": [e.to_json() for e in self.evidence],
        }


@dataclass
class CheckReport:
    backend: str
    description: str
    scratch: str
    engine: str
    started_at: float
    ended_at: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    # What the backend did that no check id covers (e.g. a lock it left behind).
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False

    def get(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)

    @property
    def matrix(self) -> dict[str, bool | None]:
        return {c.id: c.ok for c in self.checks}

    @property
    def exit_code(self) -> int:
        """0 when no guarantee is missing, 2 when one is (like drift)."""
        return 2 if any(c.ok is False for c in self.checks) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "backend": self.backend,
            "description": self.description,
            "scratch": self.scratch,
            "engine": self.engine,
            "started_at": rfc3339(self.started_at),
            "ended_at": rfc3339(self.ended_at or self.started_at),
            "checks": [c.to_json() for c in self.checks],
            "notes": list(self.notes),
            "cleanup": list(self.cleanup),
        }


def render_table(report: CheckReport) -> str:
    width = max(len(i) for i in CHECK_IDS)
    lines = [f"{report.description} (scratch: {report.scratch})", ""]
    for c in report.checks:
        lines.append(f"  {c.verdict:<8}{c.id:<{width + 2}}{c.detail}")
    missing = [c.id for c in report.checks if c.ok is False]
    lines += [f"  note: {note}" for note in report.notes]
    lines.append("")
    lines.append(
        f"{len(missing)} guarantee(s) missing: {', '.join(missing)}"
        if missing
        else "Every measurable guarantee holds."
    )
    return "\n".join(lines)


def _fence(text: str) -> str:
    return "```\n" + text.replace("```", "'''").rstrip("\n") + "\n```"


def render_markdown(report: CheckReport) -> str:
    out = [
        f"# driftsafe backend check: {report.backend}",
        "",
        f"{report.description}. Scratch: `{report.scratch}`; engine: {report.engine}; "
        f"{rfc3339(report.started_at)}.",
        "",
        "| check | result | detail |",
        "| --- | --- | --- |",
    ]
    for c in report.checks:
        detail = c.detail.replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{c.id}` | {c.verdict} | {detail} |")
    for c in report.checks:
        out += ["", f"## `{c.id}`: {c.verdict}", "", TITLES.get(c.id, c.id) + ".", "", c.detail]
        for e in c.evidence:
            code = "" if e.exit_code is None else f" (exit {e.exit_code})"
            out += [
                "",
                f"<details><summary>{e.title}: <code>{e.command}</code>{code}</summary>",
                "",
                _fence(e.output),
                "",
                "</details>",
            ]
    if report.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    if report.cleanup:
        out += ["", "## Cleanup", ""] + [f"- {line}" for line in report.cleanup]
    return "\n".join(out) + "\n"
