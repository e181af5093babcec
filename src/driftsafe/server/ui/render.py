"""Templates and the small pure helpers they use: times, sizes, values, inline SVG.

Everything a template prints is escaped by Jinja2 (autoescape on for every template);
the SVG figures are built here with every label escaped, then marked safe."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from driftsafe.timestamps import parse_timestamp, rfc3339

HERE = Path(__file__).parent


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, ago=ago, size=size, value=show_value, iso=iso, stamp=stamp)
    return env


def iso(ts: float | None) -> str:
    return rfc3339(ts) if ts is not None else ""


def when(ts: float | None) -> str:
    """``2026-12-01 14:20:35 UTC``."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def stamp(text: str | None) -> str:
    """A timestamp someone else wrote (Terraform's LockInfo ``Created``: nanoseconds,
    any zone) shown like ours; text that is no timestamp is shown as it is."""
    seconds = parse_timestamp(text or "")
    return when(seconds) if seconds is not None else (text or "-")


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "never"
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    return duration(now - ts) + " ago"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""  # unreachable


def show_value(value: Any) -> str:
    """A state value as text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- inline SVG figures ------------------------------------------------------------------

_FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""
COLOURS = {
    "held": "#2f855a",
    "forced": "#c53030",
    "clean": "#2f855a",
    "drift": "#b7791f",
    "error": "#c53030",
    "unknown": "#718096",
}


@dataclass(frozen=True)
class Bar:
    lane: str
    start: float
    end: float
    kind: str
    tip: str


def _ticks(start: float, end: float) -> list[float]:
    span = max(end - start, 1.0)
    steps = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400]
    step = next((s for s in steps if span / s <= 8), 30 * 86400)
    first = math.ceil(start / step) * step
    return [first + i * step for i in range(int((end - first) // step) + 1)]


def _tick_label(ts: float, span: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d")


def lanes_svg(
    bars: Sequence[Bar],
    *,
    start: float,
    end: float,
    title: str,
    empty: str,
    legend: Sequence[tuple[str, str]],
    marks: Sequence[tuple[float, str, str]] = (),
) -> Markup:
    """Lanes of bars on a UTC time axis from ``start`` to ``end``; ``marks`` are dots
    (time, kind, tooltip) on a lane of their own (e.g. drift checks)."""
    lanes: list[str] = []
    for bar in bars:
        if bar.lane not in lanes:
            lanes.append(bar.lane)
    label_w, plot_w, lane_h, top = 170, 640, 30, 16
    rows = max(len(lanes), 1) if bars or not marks else 0
    mark_row = 1 if marks else 0
    axis_y = top + (rows + mark_row) * lane_h
    width, height = label_w + plot_w + 20, axis_y + 52
    scale = plot_w / max(end - start, 1.0)

    def x(t: float) -> float:
        return label_w + (min(max(t, start), end) - start) * scale

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for tick in _ticks(start, end):
        tx = x(tick)
        out.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{axis_y}" stroke="#e2e8f0"/>')
        out.append(
            f'<text x="{tx:.1f}" y="{axis_y + 15}" text-anchor="middle" {_FONT} '
            f'font-size="11" fill="#4a5568">{_tick_label(tick, end - start)}</text>'
        )
    out.append(
        f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" '
        'stroke="#4a5568"/>'
    )
    for n, lane in enumerate(lanes):
        y = top + n * lane_h
        shown = lane if len(lane) <= 24 else lane[:23] + "…"
        out.append(
            f'<text x="{label_w - 8}" y="{y + lane_h / 2 + 4:.1f}" text-anchor="end" {_FONT} '
            f'font-size="12" fill="#2d3748">{escape(shown)}</text>'
        )
    if not bars and not marks:
        out.append(
            f'<text x="{label_w + 8}" y="{top + 19}" {_FONT} font-size="12" '
            f'fill="#4a5568">{escape(empty)}</text>'
        )
    for bar in bars:
        y = top + lanes.index(bar.lane) * lane_h + 6
        bx, bw = x(bar.start), max(x(bar.end) - x(bar.start), 2.0)
        out.append(
            f'<rect x="{bx:.1f}" y="{y}" width="{bw:.1f}" height="{lane_h - 12}" rx="3" '
            f'fill="{COLOURS.get(bar.kind, "#4a5568")}"><title>{escape(bar.tip)}</title></rect>'
        )
    if marks:
        my = top + rows * lane_h + lane_h / 2
        out.append(
            f'<text x="{label_w - 8}" y="{my + 4:.1f}" text-anchor="end" {_FONT} font-size="12" '
            'fill="#2d3748">checks</text>'
        )
        for at, kind, tip in marks:
            out.append(
                f'<circle cx="{x(at):.1f}" cy="{my:.1f}" r="6" '
                f'fill="{COLOURS.get(kind, "#4a5568")}"><title>{escape(tip)}</title></circle>'
            )
    lx = float(label_w)
    ly = axis_y + 30
    for kind, text in legend:
        out.append(
            f'<rect x="{lx:.1f}" y="{ly}" width="12" height="12" rx="2" '
            f'fill="{COLOURS.get(kind, "#4a5568")}"/>'
        )
        out.append(
            f'<text x="{lx + 17:.1f}" y="{ly + 10}" {_FONT} font-size="11" '
            f'fill="#2d3748">{escape(text)}</text>'
        )
        lx += 17 + len(text) * 6.2 + 20
    out.append("</svg>")
    return Markup("".join(out))
