"""Draw a `lineside spc` result as a PNG: statistic, centre line, limits, flagged points.

matplotlib is optional (`pip install lineside[plot]`); without it `draw` raises a UsageError
saying so, and `lineside spc --png` exits 2. One panel per plot: the chart and its R, S or MR
companion, or the CUSUM upper and lower sums. Points that broke a rule are drawn in red.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.cli.spc_report import UsageError

PLOT_EXTRA = "pip install lineside[plot]"


def _panels(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    chart = result["chart"]
    if chart == "cusum":
        panels = []
        for side in ("upper", "lower"):
            hits = [v for v in result["violations"] if v["plot"] == side]
            panels.append(
                (
                    f"CUSUM {side} (C{'+' if side == 'upper' else '-'})",
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


def _line(values: Any, count: int) -> list[float | None] | None:
    if values is None:
        return None
    return list(values) if isinstance(values, list) else [float(values)] * count


def draw(result: dict[str, Any], path: Path) -> None:
    """Write the chart(s) of one result to a PNG file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(f"--png needs matplotlib: {PLOT_EXTRA}") from None
    panels = _panels(result)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for ax, (title, plot) in zip(axes[:, 0], panels, strict=True):
        stats = [float("nan") if v is None else v for v in plot["statistics"]]
        x = list(range(len(stats)))
        ax.plot(x, stats, marker="o", markersize=3, linewidth=1, color="tab:blue")
        for name, style in (("center", "-"), ("lcl", "--"), ("ucl", "--")):
            line = _line(plot.get(name), len(stats))
            if line is not None:
                ys = [float("nan") if v is None else v for v in line]
                color = "tab:green" if name == "center" else "tab:red"
                label = plot.get(f"{name}_label", name.upper())
                ax.plot(x, ys, linestyle=style, color=color, linewidth=1, label=label)
        flagged = sorted({v["index"] for v in plot["violations"]})
        if flagged:
            ys = [stats[i] for i in flagged]
            ax.scatter(flagged, ys, color="red", zorder=3, s=28, label="rule broken")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("point")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=90)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
