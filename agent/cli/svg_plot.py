"""Plain SVG line charts for the self-contained HTML report: no library, no script, no CDN.

`line_chart` draws series over a shared x (seconds or row numbers), horizontal reference lines
(a threshold, limits) and shaded bands (alarms), each band and line labelled with its text.
Every element a test may look for carries a class: `series`, `ref-line`, `band`, `band-label`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
MAX_POINTS = 1500  # a polyline of more points than pixels only weighs the file down


@dataclass(frozen=True)
class Series:
    """One line: its name, its y per x (NaN is a gap) and its colour."""

    name: str
    y: Sequence[float]
    colour: str = PALETTE[0]


@dataclass(frozen=True)
class Chart:
    """What one chart shows; x is shared by every series."""

    title: str
    x: Sequence[float]
    series: list[Series]
    ref_lines: list[tuple[str, float, str]] = field(default_factory=list)  # label, y, colour
    bands: list[tuple[str, float, float]] = field(default_factory=list)  # label, x0, x1
    x_label: str = "row"
    width: int = 900
    height: int = 220


def _bounds(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if low == high:
        low, high = low - 1.0, high + 1.0
    pad = 0.06 * (high - low)
    return low - pad, high + pad


def _thin(indices: range) -> range:
    step = max(1, math.ceil(len(indices) / MAX_POINTS))
    return indices[::step]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    return [low + (high - low) * k / (count - 1) for k in range(count)]


def line_chart(chart: Chart) -> str:
    """The chart as one <svg> element."""
    left, right, top, bottom = 60, 150, 24, 34
    w, h = chart.width - left - right, chart.height - top - bottom
    xs = [float(v) for v in chart.x]
    x0, x1 = (xs[0], xs[-1]) if xs and xs[-1] > xs[0] else (0.0, 1.0)
    ys = [float(v) for s in chart.series for v in s.y] + [y for _, y, _ in chart.ref_lines]
    y0, y1 = _bounds(ys)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * h

    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{chart.width}" '
        f'height="{chart.height}" viewBox="0 0 {chart.width} {chart.height}" role="img">',
        f"<title>{escape(chart.title)}</title>",
        f'<text x="{left}" y="15" class="chart-title">{escape(chart.title)}</text>',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#bbb"/>',
    ]
    for label, b0, b1 in chart.bands:
        a, b = px(max(b0, x0)), px(min(b1, x1))
        out.append(
            f'<rect class="band" x="{a:.1f}" y="{top}" width="{max(b - a, 1.5):.1f}" '
            f'height="{h}" fill="#d62728" fill-opacity="0.15"/>'
            f'<text class="band-label" x="{a + 2:.1f}" y="{top + 11}" font-size="10" '
            f'fill="#a00">{escape(label)}</text>'
        )
    for tick in _ticks(y0, y1):
        out.append(
            f'<text x="{left - 4}" y="{py(tick) + 3:.1f}" font-size="9" text-anchor="end">'
            f"{tick:.4g}</text>"
        )
    for tick in _ticks(x0, x1):
        out.append(
            f'<text x="{px(tick):.1f}" y="{top + h + 12}" font-size="9" text-anchor="middle">'
            f"{tick:.6g}</text>"
        )
    out.append(
        f'<text x="{left + w / 2:.0f}" y="{chart.height - 4}" font-size="10" '
        f'text-anchor="middle">{escape(chart.x_label)}</text>'
    )
    for label, y, colour in chart.ref_lines:
        out.append(
            f'<line class="ref-line" x1="{left}" x2="{left + w}" y1="{py(y):.1f}" '
            f'y2="{py(y):.1f}" stroke="{colour}" stroke-dasharray="5,3"/>'
            f'<text x="{left + w + 4}" y="{py(y) + 3:.1f}" font-size="10" fill="{colour}">'
            f"{escape(label)} = {y:.4g}</text>"
        )
    for k, s in enumerate(chart.series):
        runs: list[list[str]] = [[]]
        for i in _thin(range(min(len(xs), len(s.y)))):
            y = float(s.y[i])
            if math.isfinite(y):
                runs[-1].append(f"{px(xs[i]):.1f},{py(y):.1f}")
            elif runs[-1]:
                runs.append([])
        for run in (r for r in runs if r):
            out.append(
                f'<polyline class="series" data-name="{escape(s.name)}" fill="none" '
                f'stroke="{s.colour}" stroke-width="1.2" points="{" ".join(run)}"/>'
            )
        out.append(
            f'<text x="{left + w - 4 - 90 * k}" y="{top - 6}" font-size="10" text-anchor="end" '
            f'fill="{s.colour}">{escape(s.name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
