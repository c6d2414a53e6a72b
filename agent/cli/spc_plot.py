"""Draw a `lineside spc` result as a PNG (or SVG, by the file's suffix) a quality engineer signs.

matplotlib is optional (`pip install lineside[plot]`); without it `draw` raises a UsageError
saying so, and `lineside spc --png` exits 2. One panel per plot (the chart and its R, S or MR
companion, or the CUSUM upper and lower sums), each with its centre and limits labelled with
their values; every point that broke a rule is marked with the rule's number, one marker and
colour per rule, and the legend names each rule with its count. The x axis is time when the CSV
has a time column. With spec limits a capability panel follows: the histogram against LSL, USL
and target, the within and overall normal curves, and each index with its interval and sigma.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.cli.spc_report import UsageError
from agent.cli.spc_text import INDEX_ROWS, describe, rule_counts

PLOT_EXTRA = "pip install lineside[plot]"
LABELLED = 60  # rule numbers written beside at most this many points per panel
MARKERS = "o^sDvP*Xh<>p"
COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#000")


def _panels(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    chart = result["chart"]
    if chart == "cusum":
        panels = []
        for side in ("upper", "lower"):
            hits = [v for v in result["violations"] if v["plot"] == side]
            sign = "+" if side == "upper" else "-"
            panels.append(
                (
                    f"CUSUM {side} (C{sign}) of {result['column']}",
                    {
                        "statistics": result[side],
                        "center": 0.0,
                        "lcl": None,
                        "ucl": result["h"],
                        "violations": hits,
                        "ucl_label": "H",
                    },
                )
            )
        return panels
    panels = [(f"{chart} chart of {result['column']}", result)]
    for companion in ("range", "stdev", "moving_range"):
        if companion in result:
            panels.append((companion.replace("_", " "), result[companion]))
    return panels


def _line(values: Any, count: int) -> list[float] | None:
    if values is None:
        return None
    raw = list(values) if isinstance(values, list) else [float(values)] * count
    return [math.nan if v is None else float(v) for v in raw]


def x_axis(result: dict[str, Any], count: int) -> tuple[list[Any], str]:
    """The x of each point (times when every one parses, else the point index) and its label."""
    times = result.get("times")
    if times and len(times) >= count:
        try:
            return [datetime.fromisoformat(t) for t in times[:count]], "time"
        except ValueError:
            pass
    return list(range(count)), "point" if result["chart"][:4] != "xbar" else "subgroup"


def rule_number(rule: str) -> str:
    """The number a chart shows beside a point: '1' for N1 or WE1."""
    return rule.lstrip("NWE")


def _limits(ax: Any, x: list[Any], plot: dict[str, Any], count: int) -> None:
    for name, style in (("center", "-"), ("lcl", "--"), ("ucl", "--")):
        ys = _line(plot.get(name), count)
        if ys is None:
            continue
        colour = "tab:green" if name == "center" else "tab:red"
        label = plot.get(f"{name}_label", "CL" if name == "center" else name.upper())
        ax.plot(x, ys, linestyle=style, color=colour, linewidth=1, drawstyle="steps-mid")
        last = next((v for v in reversed(ys) if not math.isnan(v)), None)
        if last is None:
            continue
        text = f"{label} = {last:.6g}" + (" (varies)" if isinstance(plot.get(name), list) else "")
        ax.annotate(
            text,
            xy=(1.0, last),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=colour,
            gid=f"limit-{name}",
        )


def _violations(ax: Any, x: list[Any], stats: list[float], plot: dict[str, Any]) -> int:
    by_point: dict[int, list[str]] = defaultdict(list)
    for v in plot["violations"]:
        by_point[v["index"]].append(v["rule"])
    counts = rule_counts(plot["violations"])
    for k, rule in enumerate(sorted(counts)):
        points = sorted({v["index"] for v in plot["violations"] if v["rule"] == rule})
        ax.scatter(
            [x[i] for i in points],
            [stats[i] for i in points],
            s=36,
            zorder=3 + k,
            marker=MARKERS[k % len(MARKERS)],
            color=COLOURS[k % len(COLOURS)],
            label=f"{rule}: {describe(rule)} ({counts[rule]})",
            gid=f"rule-{rule}",
            facecolors="none" if k else None,
        )
    for i in sorted(by_point)[:LABELLED]:
        text = ",".join(rule_number(r) for r in sorted(set(by_point[i])))
        ax.annotate(
            text,
            (x[i], stats[i]),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            color="#a00",
            gid="rule-label",
        )
    return len(by_point)


def _capability_panel(ax: Any, result: dict[str, Any], reference: list[float], np: Any) -> None:
    cap = result["capability"]
    data = np.asarray([v for v in reference if not math.isnan(v)])
    ax.hist(data, bins="auto", density=True, color="#c6dbef", edgecolor="#6baed6")
    marks = [(cap["lsl"], "LSL"), (cap["usl"], "USL"), (cap["target"], "Target")]
    lo = min([float(data.min())] + [v for v, _ in marks if v is not None])
    hi = max([float(data.max())] + [v for v, _ in marks if v is not None])
    grid = np.linspace(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), 300)
    for sigma, style, name in (
        (cap["sigma_within"], "-", "within"),
        (cap["sigma_overall"], "--", "overall"),
    ):
        if sigma > 0:
            density = np.exp(-0.5 * ((grid - cap["mean"]) / sigma) ** 2) / (sigma * 2.5066283)
            ax.plot(grid, density, style, color="#08519c", label=f"normal, sigma {name}")
    for value, name in marks:
        if value is not None:
            ax.axvline(value, color="tab:red", linestyle=":" if name != "Target" else "-.")
            ax.annotate(
                f"{name} = {value:.6g}",
                (value, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
                gid=f"spec-{name}",
            )
    level = round(100 * cap.get("confidence", 0.95))
    rows = [
        f"n = {cap['n']}   mean = {cap['mean']:.6g}",
        f"sigma within = {cap['sigma_within']:.4g} ({cap['sigma_within_source']})",
        f"sigma overall = {cap['sigma_overall']:.4g} (ddof=1)",
        f"index  value  {level}% interval  sigma",
    ]
    for name in INDEX_ROWS:
        if cap.get(name) is not None:
            low_high = cap.get("intervals", {}).get(name)
            band = f"{low_high[0]:.3f}..{low_high[1]:.3f}" if low_high else "-"
            rows.append(f"{name:<5}  {cap[name]:.3f}  {band}  {cap['sigma_used'][name]}")
    ax.text(
        1.02,
        1.0,
        "\n".join(rows),
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        family="monospace",
        gid="capability-table",
    )
    ax.set_title(f"capability of {result['column']} (reference period)")
    ax.legend(loc="center right", fontsize=7)


def draw(
    result: dict[str, Any], path: Path, reference: list[float] | None = None
) -> dict[str, Any]:
    """Write the chart(s) of one result to a PNG (or SVG) file; what was drawn, for checks.

    `reference` is the readings the capability was computed on (its histogram)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        raise UsageError(f"--png needs matplotlib: {PLOT_EXTRA}") from None
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in an SVG
    panels = _panels(result)
    with_capability = bool(result.get("capability")) and bool(reference)
    rows = len(panels) + with_capability
    fig, axes = plt.subplots(rows, 1, figsize=(11, 3.3 * rows), squeeze=False)
    drawn: dict[str, Any] = {"panels": [], "capability": with_capability}
    for ax, (title, plot) in zip(axes[:, 0], panels, strict=False):
        stats = [math.nan if v is None else float(v) for v in plot["statistics"]]
        x, xlabel = x_axis(result, len(stats))
        ax.plot(x, stats, marker="o", markersize=2.5, linewidth=0.8, color="tab:blue")
        _limits(ax, x, plot, len(stats))
        marked = _violations(ax, x, stats, plot)
        if marked > LABELLED:
            title += f"  ({marked} points broke a rule; the first {LABELLED} are numbered)"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        if plot["violations"]:
            ax.legend(loc="upper left", fontsize=7, title="rules broken (points)", title_fontsize=7)
        ax.grid(alpha=0.3)
        drawn["panels"].append({"title": title, "marked": marked, "x": xlabel})
    if with_capability:
        _capability_panel(axes[-1, 0], result, reference or [], np)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=90, format="svg" if path.suffix.lower() == ".svg" else "png")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return drawn
