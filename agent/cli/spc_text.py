"""The text `lineside spc` prints: limits, capability with intervals, every rule hit counted.

The same numbers as the JSON object (`--json`), rounded for reading; a list that is cut says
how many hits it left out.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agent.core.spc.rules import DESCRIPTIONS

INDEX_ROWS = ("cp", "cpl", "cpu", "cpk", "cpm", "pp", "ppl", "ppu", "ppk")


def number(value: Any) -> str:
    """A limit or index to six significant digits; 'varies' for a per-point list."""
    if value is None:
        return "-"
    if isinstance(value, list):
        present = [v for v in value if v is not None]
        if not present:
            return "-"
        return f"varies {min(present):.6g}..{max(present):.6g}"
    return f"{value:.6g}"


def _plot_lines(name: str, plot: dict[str, Any]) -> list[str]:
    return [
        f"{name}: centre {number(plot['center'])}  LCL {number(plot.get('lcl'))}  "
        f"UCL {number(plot.get('ucl'))}  sigma {number(plot.get('sigma'))}"
    ]


def _capability_lines(cap: dict[str, Any]) -> list[str]:
    level = round(100 * cap.get("confidence", 0.95))
    lines = [
        f"capability (n = {cap['n']}, mean {cap['mean']:.6g}, LSL {number(cap['lsl'])}, "
        f"USL {number(cap['usl'])}, target {number(cap['target'])}):",
        f"  sigma within  {cap['sigma_within']:.6g}  ({cap['sigma_within_source']})",
        f"  sigma overall {cap['sigma_overall']:.6g}  ({cap['sigma_overall_source']})",
        f"  index   value   {level}% interval   sigma",
    ]
    intervals = cap.get("intervals", {})
    for name in INDEX_ROWS:
        value = cap.get(name)
        if value is None:
            continue
        low_high = intervals.get(name)
        band = f"{low_high[0]:.3f}..{low_high[1]:.3f}" if low_high else "-"
        lines.append(f"  {name:<6} {value:6.3f}   {band:<15} {cap['sigma_used'][name]}")
    lines.extend(f"  note: {note}" for note in cap["notes"])
    return lines


def describe(rule: str) -> str:
    """A rule in words; rule 1 is "beyond the limits" (3 sigma, `--nsigmas`, or H for CUSUM).

    >>> describe("WE1"), describe("N2")
    ('1 point beyond the control limits', '9 points in a row on one side of the centre line')
    """
    if rule in ("N1", "WE1"):
        return "1 point beyond the control limits"
    return DESCRIPTIONS[rule]


def rule_counts(violations: list[dict[str, Any]]) -> Counter[str]:
    """How many points broke each rule."""
    return Counter(v["rule"] for v in violations)


def summary(result: dict[str, Any], listed: int = 20) -> str:
    """Everything a quality engineer reads off the chart, as lines of text."""
    chart, column = result["chart"], result["column"]
    points = len(result.get("statistics", result.get("upper", [])))
    lines = [f"{chart} chart of {column}: {points} points, rules {','.join(result['rules'])}"]
    if chart == "cusum":
        lines.append(
            f"CUSUM: target {number(result['center'])}  k {number(result['k'])}  "
            f"H {number(result['h'])}  sigma {number(result['sigma'])}"
        )
    else:
        lines.extend(_plot_lines(chart, result))
    for companion in ("range", "stdev", "moving_range"):
        if companion in result:
            lines.extend(_plot_lines(companion.replace("_", " "), result[companion]))
    if "ar1" in result:
        ar1 = result["ar1"]
        lines.append(f"AR(1) fit: x_t = {ar1['c']:.6g} + {ar1['phi']:.4f} x_(t-1)")
    auto = result.get("autocorrelation")
    if auto and auto["r1"] is not None:
        lines.append(
            f"lag-1 autocorrelation r1 = {auto['r1']:.3f} (2/sqrt(n) = {auto['bound']:.3f})"
        )
    if result.get("capability"):
        lines.extend(_capability_lines(result["capability"]))
    violations = result["violations"]
    counts = rule_counts(violations)
    if counts:
        lines.append(f"rule hits: {len(violations)} in all")
        lines.extend(f"  {rule}: {counts[rule]}  ({describe(rule)})" for rule in sorted(counts))
    else:
        lines.append("rule hits: none")
    times = result.get("times")
    for v in violations[:listed]:
        where = f" ({v['plot']})" if "plot" in v else ""
        when = f" {times[v['index']]}" if times and v["index"] < len(times) else ""
        lines.append(f"  {v['rule']} at point {v['index']}{when}{where}")
    if len(violations) > listed:
        lines.append(
            f"  ... {len(violations) - listed} more not listed (--list N, or --json for all)"
        )
    lines.extend(f"warning: {w}" for w in result["warnings"])
    return "\n".join(lines)
