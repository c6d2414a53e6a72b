"""The charts behind `lineside spc`: Phase I on the reference period, Phase II on every point.

`chart_values` turns one column of values (and sample sizes for p/np/u) into the JSON-able
result the command prints; `agent.cli.spc` documents its fields. Every chart is run through
its streaming `update` (`run_series`), so the command shows what the live agent would.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from agent.core.spc.attribute import SIZED, AttributeChart, fit_attribute
from agent.core.spc.base import FloatArray, Series, run_series, stack, to_json_list
from agent.core.spc.cusum import CusumChart
from agent.core.spc.ewma import EwmaChart
from agent.core.spc.imr import ImrChart, ImrLimits, fit_imr
from agent.core.spc.phase1 import Phase1Report
from agent.core.spc.rules import RuleSet, find_violations, rule_set
from agent.core.spc.subgroup import XbarChart, fit_xbar

CHARTS = ("imr", "residual", "xbar-r", "xbar-s", "ewma", "cusum", "p", "np", "c", "u")
RULE1 = ("N1", "WE1")
CONFIDENCE = 0.95
AUTOCORRELATED = (
    "the points are autocorrelated (lag-1 r1 = {r1:.2f}, beyond 2/sqrt(n) = {bound:.3f}): "
    "Shewhart limits and run rules assume independent points, so expect false signals; "
    "chart the AR(1) residuals (--chart residual), an EWMA (--chart ewma), or subgroups "
    "spaced further apart"
)
ZERO_SIGMA = (
    "constant data: sigma is 0, so the limits collapse onto the centre line and every point "
    "off it is beyond them"
)


class UsageError(Exception):
    """Bad input the user can fix; the message is the one line printed."""


def number_or_list(values: FloatArray) -> float | list[float | None] | None:
    """One number when constant over the points, else the per-point list (NaN as null)."""
    finite = values[~np.isnan(values)]
    if not finite.size:
        return None
    if np.all(finite == finite[0]):
        return float(finite[0])
    return to_json_list(values)


def plot_json(series: Series, rules: RuleSet, plot: str | None = None) -> dict[str, Any]:
    """centre, limits, sigma, statistics and rule hits of one plot (channel 0)."""
    hits = find_violations(series.z[:, 0], rules, series.beyond[:, 0]) if rules.ids else []
    return {
        "center": number_or_list(series.center[:, 0]),
        "lcl": number_or_list(series.lcl[:, 0]),
        "ucl": number_or_list(series.ucl[:, 0]),
        "sigma": number_or_list(series.sigma[:, 0]),
        "statistics": to_json_list(series.statistic[:, 0]),
        "violations": [
            {"rule": v.rule, "index": v.index, **({"plot": plot} if plot else {})} for v in hits
        ],
    }


def rule1(rules: RuleSet) -> RuleSet:
    """Only the beyond-the-limits rule of a set (for charts whose points are not independent)."""
    kept = [i for i in rules.ids if i in RULE1]
    return rule_set(",".join(kept)) if kept else rule_set("none")


def reference(n_points: int, phase1: int | None, minimum: int, what: str) -> int:
    """The number of reference points; UsageError when there are too few."""
    ref = n_points if phase1 is None else phase1
    if ref < minimum:
        raise UsageError(f"too few points: Phase I needs at least {minimum} {what}, got {ref}")
    if ref > n_points:
        raise UsageError(f"--phase1 {ref} is more than the {n_points} {what} in the file")
    return ref


def _phase1(ref: int, report: Phase1Report | None) -> dict[str, Any]:
    rounds = report.rounds if report else 0
    dropped = list(report.dropped[0]) if report else []
    return {"points": ref, "rounds": rounds, "dropped": dropped}


def _individuals(opts: Any, ref_values: FloatArray) -> ImrLimits:
    limits = fit_imr(
        ref_values[:, None],
        nsigmas=opts.nsigmas,
        sigma=opts.sigma_method,
        constants=opts.constants,
        rounds=opts.rounds,
        floor_sigma=False,
    )
    known: dict[str, Any] = {}
    if opts.center is not None:
        known["center"] = np.array([opts.center])
    if opts.sigma is not None:
        known["sigma"] = np.array([opts.sigma])
    return dataclasses.replace(limits, **known) if known else limits


def _capability(opts: Any, data: FloatArray, sigma: float | None) -> dict[str, Any] | None:
    if opts.lsl is None and opts.usl is None:
        return None
    from agent.core.spc.capability import capability
    from agent.core.spc.capability_ci import intervals

    result = capability(data, opts.lsl, opts.usl, opts.target, sigma_within=sigma)
    out = dict(result.to_dict())
    out["_reference"] = [float(v) for v in data]  # the histogram's data; not printed
    out["confidence"] = CONFIDENCE
    out["intervals"] = intervals(result, CONFIDENCE)
    return out


def _imr(opts: Any, values: FloatArray, rules: RuleSet, out: dict[str, Any]) -> float:
    ref = reference(values.size, opts.phase1, 2, "readings")
    limits = _individuals(opts, values[:ref])
    individuals, moving_range = run_series(ImrChart(limits).update, values[:, None])
    out.update(plot_json(individuals, rules))
    out["sigma"] = float(limits.sigma[0])
    out["moving_range"] = plot_json(moving_range, rule1(rules))
    out["phase1"] = _phase1(ref, limits.report)
    out["capability"] = _capability(opts, values[:ref], float(limits.sigma[0]))
    return float(limits.sigma[0])


def _residual(opts: Any, values: FloatArray, rules: RuleSet, out: dict[str, Any]) -> float:
    from agent.core.spc.autocorrelation import ar1_fit, ar1_residuals

    ref = reference(values.size, opts.phase1, 4, "readings")
    try:
        c, phi = ar1_fit(values[:ref])
    except ValueError as exc:
        raise UsageError(f"--chart residual: {exc}") from None
    residuals = ar1_residuals(values, c, phi)
    limits = _individuals(opts, residuals[1:ref])
    individuals, moving_range = run_series(ImrChart(limits).update, residuals[:, None])
    out.update(plot_json(individuals, rules))
    out["sigma"] = float(limits.sigma[0])
    out["ar1"] = {"c": c, "phi": phi}
    out["moving_range"] = plot_json(moving_range, rule1(rules))
    out["phase1"] = _phase1(ref, limits.report)
    # capability is of the process, not of its residuals: the readings' own sigma within
    out["capability"] = _capability(opts, values[:ref], None)
    return float(limits.sigma[0])


def _xbar(opts: Any, values: FloatArray, rules: RuleSet, out: dict[str, Any]) -> float:
    n = opts.subgroup
    m = values.size // n
    if values.size % n:
        out["warnings"].append(
            f"the last {values.size % n} row(s) do not fill a subgroup of {n} and are ignored"
        )
    ref = reference(m, opts.phase1, 2, "subgroups")
    spread = "range" if opts.chart == "xbar-r" else "stdev"
    used = values[: m * n]
    limits = fit_xbar(
        used[: ref * n].reshape(ref, n, 1), spread, opts.nsigmas, opts.constants, opts.rounds
    )
    xbar, companion = run_series(XbarChart(limits).update, used[:, None])
    out.update(plot_json(xbar, rules))
    out["sigma"] = float(limits.sigma[0])
    out["n"] = n
    out[spread] = plot_json(companion, rule1(rules))
    out["phase1"] = _phase1(ref, limits.report)
    out["capability"] = _capability(opts, used[: ref * n], float(limits.sigma[0]))
    return float(limits.sigma[0])


def _ewma(opts: Any, values: FloatArray, rules: RuleSet, out: dict[str, Any]) -> float:
    ref = reference(values.size, opts.phase1, 2, "readings")
    limits = _individuals(opts, values[:ref])
    chart = EwmaChart(limits.center, limits.sigma, opts.lam, opts.nsigmas)
    (series,) = run_series(chart.update, values[:, None])
    out.update(plot_json(series, rule1(rules)))
    out["sigma"] = float(limits.sigma[0])
    out["lambda"] = opts.lam
    out["phase1"] = _phase1(ref, limits.report)
    out["capability"] = _capability(opts, values[:ref], float(limits.sigma[0]))
    return float(limits.sigma[0])


def _cusum(opts: Any, values: FloatArray, rules: RuleSet, out: dict[str, Any]) -> float:
    ref = reference(values.size, opts.phase1, 2, "readings")
    limits = _individuals(opts, values[:ref])
    chart = CusumChart(limits.center, limits.sigma, opts.k, opts.h, opts.headstart)
    points = [chart.update(values[t : t + 1]) for t in range(values.size)]
    upper, lower = stack([p.upper for p in points], 1), stack([p.lower for p in points], 1)
    sigma = float(limits.sigma[0])
    chosen = rule1(rules)
    hits = plot_json(upper, chosen, "upper")["violations"]
    hits += plot_json(lower, chosen, "lower")["violations"]
    out.update(
        center=float(limits.center[0]),
        lcl=0.0,
        ucl=opts.h * sigma,
        sigma=sigma,
        k=opts.k * sigma,
        h=opts.h * sigma,
        headstart=opts.headstart,
        upper=to_json_list(upper.statistic[:, 0]),
        lower=to_json_list(lower.statistic[:, 0]),
        n_upper=[int(p.n_upper[0]) for p in points],
        n_lower=[int(p.n_lower[0]) for p in points],
        violations=sorted(hits, key=lambda v: (v["index"], v["plot"])),
        phase1=_phase1(ref, limits.report),
        capability=_capability(opts, values[:ref], sigma),
    )
    return sigma


def _attribute(
    opts: Any, counts: FloatArray, sizes: FloatArray | None, rules: RuleSet, out: dict[str, Any]
) -> float:
    kind = opts.chart
    if opts.lsl is not None or opts.usl is not None:
        raise UsageError("--lsl/--usl (capability) apply to variables charts, not to counts")
    if kind == "c" and (sizes is not None or opts.size is not None):
        raise UsageError("a c chart counts defects per inspection unit: it takes no sample size")
    if kind in SIZED and sizes is None:
        if opts.size is None:
            raise UsageError(f"a {kind} chart needs --size-column NAME or a constant --size N")
        sizes = np.full(counts.shape, float(opts.size))
    if (counts != np.round(counts)).any():
        i = int(np.flatnonzero(counts != np.round(counts))[0])
        raise UsageError(f"point {i}: count {counts[i]} is not a whole number")
    ref = reference(counts.size, opts.phase1, 2, "samples")
    ref_sizes = None if sizes is None else sizes[:ref, None]
    limits = fit_attribute(kind, counts[:ref, None], ref_sizes, opts.nsigmas, opts.rounds)
    chart = AttributeChart(limits)
    columns = (counts[:, None],) if sizes is None else (counts[:, None], sizes[:, None])
    if sizes is not None:
        fit_attribute(kind, counts[:, None], sizes[:, None])  # validates the Phase II points
    (series,) = run_series(chart.update, *columns)
    out.update(plot_json(series, rules))
    out["sigma"] = number_or_list(series.sigma[:, 0])
    out["phase1"] = _phase1(ref, limits.report)
    return float(np.nanmax(series.sigma[:, 0]))


def _check_independence(opts: Any, values: FloatArray, out: dict[str, Any]) -> None:
    """Lag-1 autocorrelation of the reference period's plotted points (readings, or subgroup
    means): a shift after it is what the chart is for, not a sign of dependence."""
    from agent.core.spc.autocorrelation import lag1

    if opts.chart in ("p", "np", "c", "u", "cusum"):
        return
    plotted = np.asarray([np.nan if s is None else s for s in out["statistics"]], dtype=float)
    if opts.chart == "ewma":  # an EWMA is autocorrelated by construction: judge the readings
        plotted = values
    check = lag1(plotted[: out["phase1"]["points"]])
    out["autocorrelation"] = check.to_dict()
    if check.significant and opts.chart not in ("residual", "ewma") and check.r1 is not None:
        out["warnings"].append(AUTOCORRELATED.format(r1=check.r1, bound=check.bound))
    elif check.significant and opts.chart == "residual" and check.r1 is not None:
        out["warnings"].append(
            f"the AR(1) residuals are still autocorrelated (r1 = {check.r1:.2f}): one lag does "
            "not describe this process fully; read the residual chart's run rules with care"
        )


def chart_values(
    opts: Any, values: FloatArray, sizes: FloatArray | None, rules: RuleSet
) -> dict[str, Any]:
    """Chart one column per `opts` (the parsed command line); the JSON-able result."""
    out: dict[str, Any] = {"warnings": []}
    shewhart = opts.chart in ("imr", "residual", "xbar-r", "xbar-s", "p", "np", "c", "u")
    out["rules"] = list(rules.ids if shewhart else rule1(rules).ids)
    out["constants"] = opts.constants
    out["nsigmas"] = opts.nsigmas
    if opts.chart == "imr":
        sigma = _imr(opts, values, rules, out)
    elif opts.chart == "residual":
        sigma = _residual(opts, values, rules, out)
    elif opts.chart.startswith("xbar"):
        sigma = _xbar(opts, values, rules, out)
    elif opts.chart == "ewma":
        sigma = _ewma(opts, values, rules, out)
    elif opts.chart == "cusum":
        sigma = _cusum(opts, values, rules, out)
    else:
        sigma = _attribute(opts, values, sizes, rules, out)
    if sigma == 0.0:
        out["warnings"].append(ZERO_SIGMA)
    _check_independence(opts, values, out)
    if out.get("capability") is None:
        out.pop("capability", None)
    return out
