"""Thresholds set by a false-alarm budget: at most `budget` false alarms per hour of normal
operation, estimated from the held-out normal scores the export has.

A score row above its threshold can start an alarm, so the share of normal rows allowed above it
is p = budget x (seconds per row) / 3600: at 1 s per row and one false alarm per 8 h, 3.5e-5.
A few hundred held-out scores cannot show a quantile that far out, so the tail is extrapolated
from its top: above u, the score that `TAIL_SHARE` of the held-out scores exceed, the excesses
are taken as exponential (the peaks-over-threshold model with shape 0, the one a dozen points
can fit: its one parameter is their mean), so P(score > u + y) = TAIL_SHARE x exp(-y / sigma)
and the threshold is u + sigma x ln(TAIL_SHARE / p). It is never below the largest held-out
score: a normal window the model has seen above its threshold is a false alarm already.

The alarm's debounce (`raise_after` rows above the threshold) and the clustering of exceedances
only lower the alarm rate below p; the budget is an upper bound, not a target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.errors import ExportError

FloatArray = npt.NDArray[np.float64]

#: The default budget: one false alarm per 8 hours (a shift) of normal operation.
FALSE_ALARMS_PER_HOUR = 1.0 / 8.0
#: The share of held-out scores above the tail's start u.
TAIL_SHARE = 0.1
#: At least this many scores above u to fit the tail; fewer inputs use the top MIN_TAIL.
MIN_TAIL = 5
#: When the inputs have no usable time column, a row is taken to be this many seconds.
DEFAULT_ROW_SECONDS = 1.0


@dataclass(frozen=True)
class BudgetThreshold:
    """A threshold and how it was reached, for the manifest."""

    threshold: float
    exceed_share: float
    tail_start: float
    tail_mean_excess: float
    held_out_max: float
    scores: int

    def describe(self, budget: float, row_seconds: float, what: str) -> str:
        """The manifest's one-line `threshold_method`."""
        return (
            f"false-alarm budget {budget:g}/h at {row_seconds:g} s per row: share "
            f"{self.exceed_share:.3g} of normal {what} above it, extrapolated by an exponential "
            f"tail above the top {TAIL_SHARE:.0%} of {self.scores} held-out normal {what}"
        )

    def record(self) -> dict[str, Any]:
        """The figures behind the threshold."""
        return {
            "exceed_share": self.exceed_share,
            "tail_start": self.tail_start,
            "tail_mean_excess": self.tail_mean_excess,
            "held_out_max": self.held_out_max,
            "scores": self.scores,
        }


def exceed_share(budget_per_hour: float, row_seconds: float) -> float:
    """The share of normal rows allowed above the threshold for `budget_per_hour` alarms."""
    return min(1.0, budget_per_hour * row_seconds / 3600.0)


def budget_threshold(
    scores: npt.NDArray[Any], budget_per_hour: float, row_seconds: float
) -> BudgetThreshold:
    """The threshold whose extrapolated exceedance share on normal rows meets the budget.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> t = budget_threshold(rng.exponential(size=2000), 1.0, 1.0)
    >>> round(t.threshold, 1)  # exponential scores: the true quantile is -ln(1/3600) = 8.2
    8.0
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise ExportError("no held-out normal scores to set a threshold on")
    p = exceed_share(budget_per_hour, row_seconds)
    top = min(s.size, max(MIN_TAIL, math.ceil(TAIL_SHARE * s.size)))
    start_index = s.size - top - 1
    tail_start = float(s[start_index]) if start_index >= 0 else float(s[0])
    excess = s[s.size - top :] - tail_start
    sigma = float(np.mean(excess))
    share_above = top / s.size
    threshold = tail_start + sigma * max(0.0, math.log(share_above / p)) if p > 0 else math.inf
    threshold = max(threshold, float(s[-1]))
    if not math.isfinite(threshold) or threshold <= 0:
        raise ExportError(
            f"calibrated threshold {threshold!r} is not a positive number; are the held-out "
            "rows constant?"
        )
    return BudgetThreshold(threshold, p, tail_start, sigma, float(s[-1]), int(s.size))


def row_seconds(paths: list[Path]) -> tuple[float, str]:
    """Seconds per row from the inputs' time column (median step), and where it came from."""
    from agent.pipeline.replay import read_times  # the replay's own reader of the time column

    steps: list[float] = []
    for path in paths:
        files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
        for file in files[:3]:
            stamps = _stamps(read_times(file))
            if stamps.size > 1:
                steps.extend(np.diff(stamps).tolist())
    positive = [s for s in steps if s > 0]
    if not positive:
        return DEFAULT_ROW_SECONDS, f"no time column: {DEFAULT_ROW_SECONDS:g} s per row assumed"
    return float(np.median(positive)), "the median step of the time column"


def _stamps(times: list[str]) -> FloatArray:
    out: list[float] = []
    for text in times:
        try:
            out.append(datetime.fromisoformat(text).timestamp())
        except ValueError:
            return np.empty(0)
    return np.asarray(out, dtype=np.float64)


def vae_threshold(
    scores: npt.NDArray[Any],
    budget_per_hour: float,
    seconds: float,
    quantile: float | None,
    margin: float | None,
) -> tuple[float, str, dict[str, Any]]:
    """The VAE threshold on the (smoothed) held-out scores: by the budget, or, when a quantile
    or margin is given, the older rule quantile x margin; with its one-line method and record."""
    if quantile is not None or margin is not None:
        from export.parity import calibrate_threshold

        q, m = quantile if quantile is not None else 0.999, margin if margin is not None else 1.25
        threshold = calibrate_threshold(np.asarray(scores, dtype=np.float32), q, m)
        method = f"quantile {q:g} of {np.asarray(scores).size} held-out normal windows x {m:g}"
        return threshold, method, {"rule": "quantile x margin", "quantile": q, "margin": m}
    found = budget_threshold(scores, budget_per_hour, seconds)
    record = {"rule": "false-alarm budget", "false_alarms_per_hour": budget_per_hour,
              "row_seconds": seconds, **found.record()}  # fmt: skip
    return found.threshold, found.describe(budget_per_hour, seconds, "windows"), record
