"""Parse and format durations such as ``90s``, ``5m``, ``1h30m``, ``250ms``."""

from __future__ import annotations

import math
import re

from driftsafe.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Return seconds for ``text``; a bare number means seconds."""
    raw = text.strip().lower()
    if not raw:
        raise ConfigError("empty duration; use e.g. 30s, 5m, 1h")
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ConfigError(f"duration {text!r} is negative")
        if not math.isfinite(value):  # "nan", "inf": float() takes them, no duration is
            raise ConfigError(f"invalid duration {text!r}; use e.g. 30s, 5m, 1h30m, 250ms")
        return value
    pos = 0
    total = 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or pos == 0 or not math.isfinite(total):
        raise ConfigError(f"invalid duration {text!r}; use e.g. 30s, 5m, 1h30m, 250ms")
    return total


def format_duration(seconds: float) -> str:
    """Human form: ``850ms``, ``42s``, ``3m05s``, ``2h10m``."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
