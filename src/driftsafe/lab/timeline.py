"""A lock timeline as a self-contained SVG: one lane per actor, who held and who waited.

The drill builds :class:`Span` objects from captured timestamps (a run's start and
end, the moment its output said the lock was acquired) and embeds the figure in the
report, so the picture is data from the run, not a drawing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from driftsafe.engine import RunResult

KINDS: dict[str, tuple[str, str]] = {
    # kind: (fill colour, legend text)
    "held": ("#2f855a", "held the lock"),
    "waited": ("#d69e2e", "waited for the lock"),
    "failed": ("#c53030", "failed to get the lock"),
    "crashed": ("#553c9a", "crashed while holding"),
}

_LABEL_W = 150  # left column with the lane names
_PLOT_W = 600
_RIGHT = 30
_LANE_H = 34
_BAR_H = 20
_TOP = 44  # title
_AXIS_H = 34
_LEGEND_H = 30
_FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""


@dataclass(frozen=True)
class Span:
    """An actor's interval: ``start``/``end`` are seconds since the epoch (or any clock)."""

    lane: str
    start: float
    end: float
    kind: str
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"span kind {self.kind!r}: one of {', '.join(KINDS)}")
        if self.end < self.start:
            raise ValueError(f"span {self.label or self.lane!r} ends before it starts")


@dataclass(frozen=True)
class Mark:
    """An instant worth pointing at (a SIGKILL, a force-unlock, a hand-over)."""

    at: float
    label: str


def first_output_at(result: RunResult, pattern: str) -> float | None:
    """When the first captured line matching ``pattern`` (a regex) was seen, or None."""
    regex = re.compile(pattern)
    return next((line.t for line in result.lines if regex.search(line.text)), None)


def run_spans(
    lane: str,
    result: RunResult,
    *,
    kind: str = "held",
    acquired_at: float | None = None,
    label: str = "",
) -> list[Span]:
    """A run as spans: ``waited`` until ``acquired_at`` (if given), then ``kind`` to its end.

    ``kind`` is what the run did once it had (or failed to get) the lock: ``held``,
    ``failed`` or ``crashed``.
    """
    start, end = result.started_at, result.ended_at
    if acquired_at is None or acquired_at <= start:
        return [Span(lane, start, end, kind, label)]
    acquired_at = min(acquired_at, end)
    return [
        Span(lane, start, acquired_at, "waited", f"waited {acquired_at - start:.1f} s"),
        Span(lane, acquired_at, end, kind, label),
    ]


def _tick_step(span: float) -> float:
    """A 1-2-5 step that gives about 5-10 ticks over ``span`` seconds."""
    if span <= 0:
        return 1.0
    raw = span / 8
    mag = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * mag:
            return float(mult * mag)
    return float(10 * mag)


def _fmt_seconds(value: float, step: float) -> str:
    decimals = 0 if step >= 1 else min(3, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f} s"


def timeline_svg(spans: Sequence[Span], *, title: str, marks: Sequence[Mark] = ()) -> str:
    """Render ``spans`` as an SVG document string (no external references)."""
    lanes: list[str] = []
    for span in spans:
        if span.lane not in lanes:
            lanes.append(span.lane)
    origin = min((s.start for s in spans), default=0.0)
    last = max([s.end for s in spans] + [m.at for m in marks], default=origin)
    total = max(last - origin, 1e-3)
    step = _tick_step(total)
    axis_end = math.ceil(total / step - 1e-9) * step
    scale = _PLOT_W / axis_end

    def x(t: float) -> float:
        return _LABEL_W + (t - origin) * scale

    plot_h = max(len(lanes), 1) * _LANE_H
    axis_y = _TOP + plot_h
    width = _LABEL_W + _PLOT_W + _RIGHT
    height = axis_y + _AXIS_H + _LEGEND_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{_LABEL_W}" y="26" {_FONT} font-size="15" font-weight="600" '
        f'fill="#1a202c">{escape(title)}</text>',
    ]
    for n, lane in enumerate(lanes):
        y = _TOP + n * _LANE_H
        if n % 2 == 0:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{_LANE_H}" fill="#f7fafc"/>')
        out.append(
            f'<text x="{_LABEL_W - 10}" y="{y + _LANE_H / 2 + 4:.1f}" text-anchor="end" '
            f'{_FONT} font-size="12" fill="#2d3748">{escape(lane)}</text>'
        )
    # Grid and axis first so bars paint over them.
    tick = 0.0
    while tick <= axis_end + 1e-9:
        tx = _LABEL_W + tick * scale
        out.append(
            f'<line x1="{tx:.1f}" y1="{_TOP}" x2="{tx:.1f}" y2="{axis_y}" stroke="#e2e8f0"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" {_FONT} '
            f'font-size="11" fill="#4a5568">{_fmt_seconds(tick, step)}</text>'
        )
        tick += step
    out.append(
        f'<line x1="{_LABEL_W}" y1="{axis_y}" x2="{_LABEL_W + _PLOT_W}" y2="{axis_y}" '
        f'stroke="#4a5568"/>'
    )
    if not spans:
        out.append(
            f'<text x="{_LABEL_W + 10}" y="{_TOP + 21}" {_FONT} font-size="12" '
            f'fill="#718096">no lock activity recorded</text>'
        )
    for span in spans:
        lane_y = _TOP + lanes.index(span.lane) * _LANE_H
        bx = x(span.start)
        bw = max((span.end - span.start) * scale, 2.0)
        by = lane_y + (_LANE_H - _BAR_H) / 2
        fill = KINDS[span.kind][0]
        tip = f"{span.lane}: {span.kind} {span.start - origin:.2f}-{span.end - origin:.2f} s"
        if span.label:
            tip += f" ({span.label})"
        out.append(
            f'<rect x="{bx:.1f}" y="{by:.1f}" width="{bw:.1f}" height="{_BAR_H}" rx="3" '
            f'fill="{fill}"><title>{escape(tip)}</title></rect>'
        )
        if span.label:
            # Inside the bar when it fits (roughly 6.5 px per character), else after it.
            inside = len(span.label) * 6.5 + 10 < bw
            lx = bx + 6 if inside else bx + bw + 4
            colour = "#ffffff" if inside else "#2d3748"
            out.append(
                f'<text x="{lx:.1f}" y="{by + _BAR_H / 2 + 4:.1f}" {_FONT} font-size="11" '
                f'fill="{colour}">{escape(span.label)}</text>'
            )
    for mark in marks:
        mx = x(mark.at)
        out.append(
            f'<line x1="{mx:.1f}" y1="{_TOP - 4}" x2="{mx:.1f}" y2="{axis_y}" '
            f'stroke="#1a202c" stroke-dasharray="4 3"><title>{escape(mark.label)}</title></line>'
        )
        out.append(
            f'<text x="{mx + 3:.1f}" y="{_TOP - 6}" {_FONT} font-size="10" '
            f'fill="#1a202c">{escape(mark.label)}</text>'
        )
    lx = float(_LABEL_W)
    ly = axis_y + _AXIS_H + 8
    for fill, text in KINDS.values():
        out.append(f'<rect x="{lx:.1f}" y="{ly}" width="14" height="12" rx="2" fill="{fill}"/>')
        out.append(
            f'<text x="{lx + 19:.1f}" y="{ly + 10}" {_FONT} font-size="11" '
            f'fill="#2d3748">{escape(text)}</text>'
        )
        lx += 19 + len(text) * 5.9 + 22
    out.append("</svg>")
    return "\n".join(out)
