"""The lock timeline SVG: lanes, scale, colours, legend, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from driftsafe.engine import Engine
from driftsafe.lab.timeline import KINDS, Mark, Span, first_output_at, run_spans, timeline_svg

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = 1_800_000_000.0


def _bars(root: ET.Element) -> list[ET.Element]:
    # Span bars are the rects that carry a tooltip.
    return [r for r in root.iter(f"{{{NS['s']}}}rect") if r.find("s:title", NS) is not None]


def test_lanes_scale_and_colours() -> None:
    spans = [
        Span("apply A", T0, T0 + 6, "held", "A holds"),
        Span("apply B", T0 + 1, T0 + 1.2, "failed", "lock error"),
        Span("apply C", T0 + 1.5, T0 + 6.1, "waited", "-lock-timeout"),
        Span("apply C", T0 + 6.1, T0 + 8, "held", "C"),
        Span("apply D", T0 + 2, T0 + 3, "crashed", "SIGKILL"),
    ]
    svg = timeline_svg(spans, title="Who held the lock", marks=[Mark(T0 + 6, "released")])
    root = ET.fromstring(svg)
    assert root.get("viewBox") and "href" not in svg  # nothing external
    texts = [t.text for t in root.iter(f"{{{NS['s']}}}text")]
    assert texts.index("apply A") < texts.index("apply B") < texts.index("apply C")
    assert texts.count("apply C") == 1  # one lane per actor
    assert "Who held the lock" in texts and "released" in texts
    assert "0 s" in texts and "8 s" in texts  # axis in seconds from the first start
    for _, legend in KINDS.values():
        assert legend in texts
    bars = _bars(root)
    assert len(bars) == len(spans)
    assert [b.get("fill") for b in bars] == [KINDS[s.kind][0] for s in spans]
    a, b = float(bars[0].get("width", 0)), float(bars[1].get("width", 0))
    assert a == pytest.approx(b * 30, rel=0.01)  # widths proportional to durations
    assert float(bars[0].get("x", 0)) < float(bars[1].get("x", 0))
    # Same lane, same y; different lanes, different y.
    assert bars[2].get("y") == bars[3].get("y") != bars[0].get("y")


def test_labels_are_escaped_and_short_spans_visible() -> None:
    spans = [
        Span("<script>x</script>", T0, T0 + 10, "held", "a & b"),
        Span("instant", T0 + 5, T0 + 5, "failed", "<oops>"),
    ]
    svg = timeline_svg(spans, title="t <1>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;oops&gt;" in svg
    root = ET.fromstring(svg)
    assert float(_bars(root)[1].get("width", 0)) >= 2


def test_empty_and_invalid() -> None:
    root = ET.fromstring(timeline_svg([], title="none"))
    assert any(t.text == "no lock activity recorded" for t in root.iter(f"{{{NS['s']}}}text"))
    with pytest.raises(ValueError, match="kind"):
        Span("a", T0, T0 + 1, "sleeping")
    with pytest.raises(ValueError, match="ends before"):
        Span("a", T0 + 1, T0, "held")


def test_spans_from_a_real_run(engine: Engine, tmp_path: Path) -> None:
    result = engine.run(["version"], cwd=tmp_path, timeout=60)
    seen = first_output_at(result, r"^Terraform v1\.")
    assert seen is not None and result.started_at <= seen <= result.ended_at
    assert first_output_at(result, r"never printed") is None
    waited, held = run_spans("apply C", result, acquired_at=seen, label="C")
    assert (waited.kind, waited.start, waited.end) == ("waited", result.started_at, seen)
    assert (held.kind, held.start, held.end, held.label) == ("held", seen, result.ended_at, "C")
    (failed,) = run_spans("apply B", result, kind="failed")
    assert (failed.start, failed.end) == (result.started_at, result.ended_at)
