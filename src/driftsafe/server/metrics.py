"""Prometheus text metrics kept in process memory (one server process each)."""

from __future__ import annotations

import threading
from collections import defaultdict

Labels = tuple[tuple[str, str], ...]

_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

_HELP = {
    "driftsafe_http_requests_total": ("counter", "HTTP requests by method, route and status."),
    "driftsafe_state_writes_total": ("counter", "State versions written."),
    "driftsafe_conflicts_total": ("counter", "Refused writes and locks by kind."),
    "driftsafe_auth_failures_total": ("counter", "Requests refused for missing/bad credentials."),
    "driftsafe_locks_total": ("counter", "Lock requests by outcome."),
    "driftsafe_lock_wait_seconds": ("histogram", "Time LOCK ?wait= requests waited."),
    "driftsafe_lock_hold_seconds": ("histogram", "How long released locks were held."),
    "driftsafe_request_seconds": ("histogram", "Request latency by route."),
}


def _fmt(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._hist: dict[str, dict[Labels, list[float]]] = defaultdict(dict)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._hist[name]
            # per bucket counts, then sum and count
            data = series.setdefault(key, [0.0] * (len(_BUCKETS) + 2))
            for i, bound in enumerate(_BUCKETS):
                if value <= bound:
                    data[i] += 1
            data[-2] += value
            data[-1] += 1

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            names = sorted(set(self._counters) | set(self._hist) | set(_HELP))
            for name in names:
                kind, text = _HELP.get(name, ("untyped", name))
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")
                for key, value in sorted(self._counters.get(name, {}).items()):
                    lines.append(f"{name}{_fmt(key)} {value:g}")
                for key, data in sorted(self._hist.get(name, {}).items()):
                    for i, bound in enumerate(_BUCKETS):
                        lines.append(
                            f"{name}_bucket{_fmt((*key, ('le', f'{bound:g}')))} {data[i]:g}"
                        )
                    lines.append(f"{name}_bucket{_fmt((*key, ('le', '+Inf')))} {data[-1]:g}")
                    lines.append(f"{name}_sum{_fmt(key)} {data[-2]:.6f}")
                    lines.append(f"{name}_count{_fmt(key)} {data[-1]:g}")
        return "\n".join(lines) + "\n"
