"""`lineside spc`: chart one column of a historian CSV and print the result as one JSON object.

Phase I estimates the limits from the first `--phase1` points (all points by default;
`--rounds R` drops out-of-control reference points and re-estimates up to R times), Phase II
charts every point with those fixed limits. Subgroups (`--subgroup N`, X-bar charts) are N
consecutive rows; rows left over at the end are ignored with a warning. Attribute charts read
the count from `--column` and the sample size from `--size-column NAME` or a constant
`--size N` (p, np, u; a c chart has none). `--center`/`--sigma` give known standards instead
of Phase I estimates (I-MR, EWMA, CUSUM).

EWMA and CUSUM take their centre and sigma from an I-MR Phase I (MR-bar / d2, or
`--sigma-method`) unless `--center`/`--sigma` are given.

The JSON object: `chart`; `center`; `lcl` and `ucl` (a number, or a list when the limits vary
per point: EWMA, p and u with varying sizes); `sigma` (the process sigma the limits use; for
p/np/c/u the standard deviation of the plotted statistic, a list when sizes vary);
`statistics` (the plotted statistic per point or subgroup; CUSUM prints `upper` and `lower`
instead, with `h` and `k` in data units); `violations` (`{rule, index}`; for CUSUM also
`plot`: "upper" or "lower"); X-bar charts add the companion `range` or `stdev` object and I-MR
the `moving_range` object, each with `center`, `lcl`, `ucl`, `sigma` (of that statistic),
`statistics`, `violations`. Run rules other than rule 1 assume independent points, so they
are applied to the Shewhart charts (I, X-bar, p, np, c, u) only; EWMA, CUSUM and the R, S, MR
companions get rule 1 (beyond their limits). `rules` lists what was applied, `phase1` what
Phase I used and dropped, `warnings` anything the reader must know (constant data: sigma 0,
the limits collapse onto the centre line, every point off it is beyond them). `capability`
appears with `--lsl`/`--usl`, with `intervals` (95 % confidence, as qcc computes them) and
`sigma_used` (which sigma each index divides by). `times` (one per point, a subgroup's first
row) appears when the CSV has a time column. `autocorrelation` is the lag-1 r1 of the
reference period's points; when it is significant a warning suggests `--chart residual` (an
I-MR chart of the AR(1) residuals, `ar1` gives the fit), an EWMA or wider subgroups. The text
output prints the limits, the capability table and every rule's count, and lists the first
`--list` hits, saying how many it left out. Exit 2 on bad input with one line naming the problem.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agent.cli.spc_report import CHARTS, UsageError, chart_values
from agent.cli.spc_text import summary
from agent.core.spc.base import FloatArray
from agent.core.spc.constants import CONSTANT_KINDS, check_subgroup_size
from agent.core.spc.rules import rule_set
from agent.errors import DataError

KNOWN_STANDARDS = ("imr", "ewma", "cusum")


def add_parser(sub: Any) -> None:
    """Register `lineside spc` on the subparsers of the main command line."""
    p = sub.add_parser("spc", help="chart one CSV column (I-MR, X-bar, EWMA, CUSUM, p/np/c/u)")
    p.add_argument("--input", required=True, help="historian CSV (`,` or `;`)")
    p.add_argument("--column", required=True, help="the column to chart (counts for p/np/c/u)")
    p.add_argument("--chart", required=True, choices=CHARTS)
    p.add_argument("--subgroup", type=int, help="subgroup size n (2..25) for xbar-r/xbar-s")
    p.add_argument("--lambda", dest="lam", type=float, default=0.2, help="EWMA weight")
    p.add_argument("--nsigmas", type=float, default=3.0, help="L: limits at L sigma")
    p.add_argument("--k", type=float, default=0.5, help="CUSUM reference value, in sigma")
    p.add_argument("--h", type=float, default=5.0, help="CUSUM decision interval, in sigma")
    p.add_argument("--headstart", type=float, default=0.0, help="CUSUM FIR, a fraction of h")
    p.add_argument("--rules", default="we", help="nelson | we | none | ids like N1,N2,WE3")
    p.add_argument("--constants", default="table", choices=CONSTANT_KINDS)
    p.add_argument(
        "--sigma-method", default="moving-range", choices=["moving-range", "overall", "larger"]
    )
    p.add_argument("--phase1", type=int, help="points (subgroups) in the reference period")
    p.add_argument("--rounds", type=int, default=0, help="Phase I rounds dropping OOC points")
    p.add_argument("--center", type=float, help="known centre (imr, ewma, cusum target)")
    p.add_argument("--sigma", type=float, help="known process sigma (imr, ewma, cusum)")
    p.add_argument("--size-column", help="sample size column for p/np/u")
    p.add_argument("--size", type=float, help="constant sample size for p/np/u")
    p.add_argument("--lsl", type=float, help="lower spec limit (adds capability)")
    p.add_argument("--usl", type=float, help="upper spec limit (adds capability)")
    p.add_argument("--target", type=float, help="target for Cpm")
    p.add_argument(
        "--png", help="also draw the chart to this PNG, or SVG by its suffix (lineside[plot])"
    )
    p.add_argument("--list", type=int, default=20, help="rule hits listed in the text (20)")
    p.add_argument("--json", action="store_true", help="print the JSON object (default: text)")
    p.set_defaults(func=cmd_spc)


def cmd_spc(args: argparse.Namespace) -> int:
    """Run `lineside spc`; exit 2 with one line on bad input."""
    try:
        result = chart_csv(args)
        reference = result.get("capability", {}).pop("_reference", None)
        if args.png:
            from agent.cli.spc_plot import draw

            draw(result, Path(args.png), reference)
    except (UsageError, DataError, ValueError) as exc:
        print(f"lineside spc: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(summary(result, args.list))
    return 0


def _read(args: argparse.Namespace) -> tuple[FloatArray, FloatArray | None, list[int]]:
    from agent.core.tabular import read_csv

    columns = [args.column] + ([args.size_column] if args.size_column else [])
    table = read_csv(Path(args.input), columns, option="--column")
    values = table.column(args.column)
    sizes = table.column(args.size_column) if args.size_column else None
    for name, col in ((args.column, values), (args.size_column, sizes)):
        if col is not None and np.isnan(col).any():
            row = table.lines[int(np.flatnonzero(np.isnan(col))[0])]
            raise UsageError(f"{args.input}: column {name!r} row {row} is empty (NaN)")
    return values, sizes, table.lines


def chart_csv(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON-able result of `lineside spc` for parsed arguments."""
    if args.rounds < 0:
        raise UsageError(f"--rounds must be >= 0, got {args.rounds}")
    if args.subgroup is not None and not args.chart.startswith("xbar"):
        raise UsageError(f"--subgroup applies to xbar-r and xbar-s, not {args.chart}")
    if args.chart.startswith("xbar"):
        if args.subgroup is None:
            raise UsageError(f"--chart {args.chart} needs --subgroup N (2..25)")
        try:
            check_subgroup_size(args.subgroup)
        except ValueError as exc:
            raise UsageError(f"--subgroup: {exc}") from None
    if (args.center is not None or args.sigma is not None) and args.chart not in KNOWN_STANDARDS:
        known = ", ".join(KNOWN_STANDARDS)
        raise UsageError(f"--center/--sigma apply to {known}, not {args.chart}")
    if args.lsl is not None and args.usl is not None and args.lsl >= args.usl:
        raise UsageError(f"--lsl {args.lsl} must be below --usl {args.usl}")
    if args.sigma is not None and not (math.isfinite(args.sigma) and args.sigma >= 0):
        raise UsageError(f"--sigma must be a finite number >= 0, got {args.sigma}")
    rules = rule_set(args.rules)
    values, sizes, _ = _read(args)
    result = chart_values(args, values, sizes, rules)
    result = {"chart": args.chart, "column": args.column, **result}
    times = point_times(Path(args.input), args.subgroup if args.chart.startswith("xbar") else 1)
    if times is not None:
        result["times"] = times[: len(result.get("statistics", result.get("upper", [])))]
    return result


def point_times(path: Path, per_point: int) -> list[str] | None:
    """The time of each plotted point (a subgroup's first row), or None without a time column."""
    from agent.pipeline.replay import read_times

    times = read_times(path)
    if not times or not all(times):
        return None
    return times[::per_point]
