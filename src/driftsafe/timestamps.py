"""One timestamp format for everything driftsafe writes: RFC 3339, UTC, milliseconds."""

from __future__ import annotations

import datetime as dt


def rfc3339(ts: float) -> str:
    """Epoch seconds -> ``2026-12-01T13:37:54.123Z``."""
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_or_none(ts: float | None) -> str | None:
    """:func:`rfc3339`, with None kept as None (a field that was never set)."""
    return None if ts is None else rfc3339(ts)
