"""The console's figures and derived views: the drift timeline, the 24 h lock spans,
the latest drift findings (with secrets hidden), and time-filter parsing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from driftsafe.errors import BadRequest
from driftsafe.server.ui.render import Bar, duration, lanes_svg, when
from driftsafe.state import SENSITIVE, SecretPaths
from driftsafe.store import AuditEvent, DriftSummary

DAY = 86400.0


def parse_time(raw: str | None) -> float | None:
    """A filter time: ``2026-12-01T14:00`` (a browser's datetime-local, read as UTC)
    or RFC 3339 with its zone."""
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{raw!r} is not a time: use 2026-12-01T14:00 (UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def drift_timeline(history: Sequence[DriftSummary], *, now: float) -> Markup:
    """One dot per stored drift report: clean, drifted or error, over time."""
    start = min((h.at for h in history), default=now - 7 * DAY)
    start = min(start, now - DAY)
    marks = [
        (
            h.at,
            h.status if h.status in ("clean", "drift", "error") else "unknown",
            f"{when(h.at)}: {h.status}"
            + (f", {h.findings} finding(s)" if h.status == "drift" else ""),
        )
        for h in reversed(history)
    ]
    return lanes_svg(
        [],
        start=start,
        end=now,
        title="Drift checks over time",
        empty="no drift report stored yet",
        legend=[("clean", "clean"), ("drift", "drifted"), ("error", "error")],
        marks=marks,
    )


def lock_spans(events: Sequence[AuditEvent], *, now: float) -> Markup:
    """Who held the lock in the last 24 hours, from the audit log: one lane per holder,
    a bar from each lock to its release (red when it was forced)."""
    start = now - DAY
    bars: list[Bar] = []
    open_locks: dict[str, tuple[float, str]] = {}
    for e in events:
        lock_id = str(e.detail.get("id", ""))
        if e.action == "lock":
            who = str(e.detail.get("who") or e.token or "?")
            open_locks[lock_id] = (e.at, who)
            continue
        begun = open_locks.pop(lock_id, None)
        if begun is None:
            continue
        at, who = begun
        forced = e.action == "force-unlock"
        tip = f"{who}: lock {lock_id}, {when(at)} for {duration(e.at - at)}"
        tip += f", force-unlocked by {e.token}" if forced else ""
        if e.at >= start:
            bars.append(Bar(who, max(at, start), e.at, "forced" if forced else "held", tip))
    for lock_id, (at, who) in open_locks.items():
        tip = f"{who}: lock {lock_id}, held since {when(at)}"
        bars.append(Bar(who, max(at, start), now, "held", tip))
    return lanes_svg(
        bars,
        start=start,
        end=now,
        title="Who held the lock in the last 24 hours",
        empty="nobody held the lock in the last 24 hours",
        legend=[("held", "held, released by its run"), ("forced", "force-unlocked")],
    )


def drift_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The findings of a stored drift report as ``drift check`` shows them, with every
    value that is marked sensitive or that the secret scan flags as (sensitive)."""
    found = report.get("findings")
    if not isinstance(found, list):
        return []
    scanner = SecretPaths()
    rows = []
    for f in found:
        if not isinstance(f, dict):
            continue
        path = str(f.get("path") or "")
        name = path.rsplit(".", 1)[-1] or str(f.get("address") or "")
        hidden = f.get("sensitive") is True or any(
            scanner.output(name, {"value": f.get(side)}) for side in ("state", "reality", "config")
        )
        rows.append(
            {
                "address": str(f.get("address", "")),
                "path": path or "(resource)",
                "kind": str(f.get("kind", "")),
                "apply": str(f.get("apply", "")),
                "message": str(f.get("message", "")) if not hidden else _hidden(f),
                **{
                    side: SENSITIVE if hidden else f.get(side)
                    for side in ("state", "reality", "config")
                },
            }
        )
    return rows


def _hidden(finding: dict[str, Any]) -> str:
    # The message quotes the values ("... 200 -> 100"): say what apply does without them.
    return f"apply would {finding.get('apply', '?')} {finding.get('path') or 'this resource'}"
