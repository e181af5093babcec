"""One timestamp format for everything driftsafe writes: RFC 3339, UTC, milliseconds."""

from __future__ import annotations

import datetime as dt
import re


def rfc3339(ts: float) -> str:
    """Epoch seconds -> ``2026-12-01T13:37:54.123Z``."""
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_or_none(ts: float | None) -> str | None:
    """:func:`rfc3339`, with None kept as None (a field that was never set)."""
    return None if ts is None else rfc3339(ts)


_TIMESTAMP = re.compile(
    r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?", re.IGNORECASE
)


def parse_timestamp(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 time, whatever its precision or zone (Terraform's
    LockInfo ``Created`` carries nanoseconds and the writer's offset); a time without
    a zone is UTC. None for text that is no timestamp."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    moment = dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=dt.UTC)
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:]))
    return moment.timestamp() + (float(fraction) if fraction else 0.0)
