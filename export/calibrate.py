"""Decision settings the export chooses on held-out normal data only: score smoothing, the
fusion of the SPC and VAE alarms (agent.pipeline.events.fusion), and the refusal of SPC limits
that alarm on normal operation. No label is ever looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.bundles.manifest import FusionMode
from agent.core.spc import ImrChart, ImrLimits
from agent.pipeline.events.alarms import SustainedRuleAlarm
from agent.pipeline.events.fusion import choose_fusion
from agent.pipeline.replay import DEFAULT_DETECTION
from export.errors import ExportError

FloatArray = npt.NDArray[np.float64]

#: The export's fusion unless told otherwise: the VAE score and the drift-tolerant shift
#: score, each over its own threshold calibrated on held-out normal rows, summed with weights
#: (agent.pipeline.events.fusion). On SKAB's selection folders (valve2 + other) it beat the VAE
#: alone and every other mode (F1 0.864 vs 0.791, FAR 14.7 % vs 25.4 %); valve1 is held out
#: (benchmarks/skab.py prints the comparison). Every mode with SPC in it, `auto` included,
#: raised the false-alarm rate there, so SPC keeps its own events and tags but stays out of
#: the decision unless a site adds it with `[detection] fusion`.
DEFAULT_FUSION: str = FusionMode.VAE_PLUS_SHIFT.value
#: `--fusion auto`: the rule of `choose_fusion` on the held-out normal rows.
AUTO_FUSION = "auto"
#: `--max-spc-alarm-share`: above this share of held-out normal rows under the SPC alarm the
#: export refuses; a bundle that alarms on 1 row in 20 of normal operation is not believed.
MAX_SPC_ALARM_SHARE = 0.05
#: How many channels a refusal names, worst first.
BLAMED = 5
#: The I-MR rules (`ImrState` fields) in plant words.
RULE_WORDS = {
    "beyond_limits": "beyond its control limits",
    "mr_beyond": "moving range beyond its limit",
    "flatline": "flatline",
}


def ewma(scores: npt.NDArray[Any], alpha: float) -> FloatArray:
    """The EWMA the live monitor applies (weight `alpha` on the newest score), from the start.

    Examples
    --------
    >>> ewma(np.array([1.0, 3.0, 3.0]), 0.5).tolist()
    [1.0, 2.0, 2.5]
    """
    out = np.asarray(scores, dtype=np.float64).copy()
    for i in range(1, out.size):
        out[i] = out[i - 1] + alpha * (out[i] - out[i - 1])
    return out


def smoothed_parts(parts: list[npt.NDArray[Any]], alpha: float) -> FloatArray:
    """Each part's scores smoothed on their own (the monitor restarts at a gap), concatenated."""
    if alpha >= 1.0:
        return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    return np.concatenate([ewma(p, alpha) for p in parts])


@dataclass(frozen=True)
class SpcTrace:
    """The live SPC alarm over held-out normal rows, and each channel's part in it."""

    active: npt.NDArray[np.bool_]  # per row: the alarm is held
    held: FloatArray  # per channel: share of rows on which its rule holds the alarm
    rules: list[dict[str, float]]  # per channel: share of rows breaking each I-MR rule

    @property
    def share(self) -> float:
        """Share of the rows on which the SPC alarm is held."""
        return float(np.mean(self.active)) if self.active.size else 0.0


def spc_trace(
    limits: ImrLimits, segments: list[FloatArray], ignore: npt.NDArray[np.bool_] | None = None
) -> SpcTrace:
    """The SPC alarm the live monitor would hold on each row of the held-out segments, with
    the site defaults of `[detection]` (rule hits in span, flatline, clear), and who holds it;
    for channels marked in `ignore` (the drifting ones) leaving the limits does not count."""
    d = DEFAULT_DETECTION
    channels = limits.center.size
    active: list[bool] = []
    held = np.zeros(channels)
    broken = {rule: np.zeros(channels) for rule in RULE_WORDS}
    for rows in segments:
        chart = ImrChart(limits, flatline_samples=d.flatline_samples)
        alarm = SustainedRuleAlarm(rows.shape[1], d.spc_hits, d.spc_span, d.clear_after)
        for row in rows:
            state = chart.update(row)
            hits = state.out_of_control
            if ignore is not None:  # a drifter's level leaves the limits; its other rules count
                hits = (state.beyond_limits & ~ignore) | state.mr_beyond | state.flatline
            alarm.update(hits)
            active.append(alarm.active)
            held += alarm.channels_sustained
            for rule, counts in broken.items():
                counts += getattr(state, rule)
    n = max(len(active), 1)
    rules = [{r: float(broken[r][i] / n) for r in RULE_WORDS} for i in range(channels)]
    return SpcTrace(np.array(active, dtype=bool), held / n, rules)


def check_spc_alarm_share(trace: SpcTrace, columns: list[str], bound: float, allowed: bool) -> str:
    """Refuse a bundle whose SPC alarm holds on more than `bound` of held-out normal rows,
    naming the channels to blame; with `allowed`, return the warning instead ("" if under)."""
    if trace.share <= bound:
        return ""
    order = np.argsort(-trace.held, kind="stable")
    blamed = [
        f"{columns[i]} on {100 * trace.held[i]:.1f} % of rows ({_main_rule(trace.rules[i])})"
        for i in order[:BLAMED]
        if trace.held[i] >= 0.0005  # shown as 0.1 % or more
    ]
    found = (
        f"the SPC alarm holds on {100 * trace.share:.1f} % of {trace.active.size} held-out "
        f"normal rows (bound {100 * bound:g} %); it would alarm on normal operation. Channels "
        f"holding it: {', '.join(blamed) or 'none alone'}"
    )
    if allowed:
        return f"warning: {found}; exporting anyway (--allow-spc-alarms)"
    raise ExportError(
        f"{found}. Leave those columns out (--columns, or detect = false in the tag map with "
        "--tag-map), train on more normal rows, raise --max-spc-alarm-share, or pass "
        "--allow-spc-alarms to export anyway"
    )


def _main_rule(shares: dict[str, float]) -> str:
    rule = max(shares, key=lambda r: shares[r])
    return f"{RULE_WORDS[rule]} on {100 * shares[rule]:.1f} %"


def fusion_for(trace: SpcTrace, window: int) -> tuple[str, dict[str, Any]]:
    """The bundle's fusion mode and the record of why (shares of held-out normal rows)."""
    mode, shares = choose_fusion(trace.active, sustain=window)
    basis = {
        "held_out_rows": int(trace.active.size),
        "spc_alarm_share": {m: round(s, 6) for m, s in shares.items()},
        "auto_rule": "the most inclusive mode whose SPC part holds the alarm on at most 1% of "
        "held-out normal rows",
    }
    return mode, basis
