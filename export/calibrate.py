"""Decision settings the export chooses on held-out normal data only: score smoothing and the
fusion of the SPC and VAE alarms (agent.pipeline.events.fusion). No label is ever looked at.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from agent.bundles.manifest import FusionMode
from agent.core.spc import ImrChart, ImrLimits
from agent.pipeline.events.alarms import SustainedRuleAlarm
from agent.pipeline.events.fusion import choose_fusion
from agent.pipeline.replay import DEFAULT_DETECTION

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


def spc_alarm_rows(limits: ImrLimits, segments: list[FloatArray]) -> npt.NDArray[np.bool_]:
    """The SPC alarm the live monitor would hold on each row of the held-out segments,
    with the site defaults of `[detection]` (rule hits in span, flatline, clear)."""
    d = DEFAULT_DETECTION
    active: list[bool] = []
    for rows in segments:
        chart = ImrChart(limits, flatline_samples=d.flatline_samples)
        alarm = SustainedRuleAlarm(rows.shape[1], d.spc_hits, d.spc_span, d.clear_after)
        for row in rows:
            alarm.update(chart.update(row).out_of_control)
            active.append(alarm.active)
    return np.array(active, dtype=bool)


def fusion_for(
    limits: ImrLimits, segments: list[FloatArray], window: int
) -> tuple[str, dict[str, Any]]:
    """The bundle's fusion mode and the record of why (shares of held-out normal rows)."""
    active = spc_alarm_rows(limits, segments)
    mode, shares = choose_fusion(active, sustain=window)
    basis = {
        "held_out_rows": int(active.size),
        "spc_alarm_share": {m: round(s, 6) for m, s in shares.items()},
        "auto_rule": "the most inclusive mode whose SPC part holds the alarm on at most 1% of "
        "held-out normal rows",
    }
    return mode, basis
