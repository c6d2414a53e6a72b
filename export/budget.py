"""Thresholds set by a false-alarm budget: at most `budget` false alarms per hour of normal
operation, estimated from the held-out normal scores the export has.

A score row above its threshold can start an alarm, so the share of normal rows allowed above it
is p = budget x (seconds per row) / 3600: at 1 s per row and one false alarm per 8 h, 3.5e-5.
A few hundred held-out scores cannot show a quantile that far out, so the tail is extrapolated
from its top (peaks over threshold): above u, the score that `TAIL_SHARE` of the held-out
scores exceed, the excesses follow a generalised Pareto law. With fewer than `MIN_SHAPE_FIT`
excesses only its exponential case (shape 0) is fitted, whose one parameter is their mean:
P(score > u + y) = TAIL_SHARE x exp(-y / sigma), threshold u + sigma x ln(TAIL_SHARE / p).
With more, the shape is fitted too (probability-weighted moments, Hosking and Wallis 1987,
held within [-0.5, 0.5]): a tail lighter than exponential (shape < 0, a score that cannot grow
without bound) gives a lower threshold, a heavier one a higher. It is never below the largest
held-out score: a normal window the model has seen above its threshold is a false alarm.

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
#: From this many excesses on, the tail's shape is fitted as well as its scale.
MIN_SHAPE_FIT = 50
#: The fitted shape is held within +-this (a few dozen points do not say more).
MAX_SHAPE = 0.5
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
    tail_shape: float = 0.0
    tail_scale: float = 0.0

    def describe(self, budget: float, row_seconds: float, what: str) -> str:
        """The manifest's one-line `threshold_method`."""
        return (
            f"false-alarm budget {budget:g}/h at {row_seconds:g} s per row: share "
            f"{self.exceed_share:.3g} of normal {what} above it, extrapolated by a Pareto tail "
            f"(shape {self.tail_shape:.2g}) above the top {TAIL_SHARE:.0%} of {self.scores} "
            f"held-out normal {what}"
        )

    def record(self) -> dict[str, Any]:
        """The figures behind the threshold."""
        return {
            "exceed_share": self.exceed_share,
            "tail_start": self.tail_start,
            "tail_mean_excess": self.tail_mean_excess,
            "tail_shape": self.tail_shape,
            "tail_scale": self.tail_scale,
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
    7.8
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
    mean_excess = float(np.mean(excess))
    shape, scale = pareto_tail(excess)
    share_above = top / s.size
    ratio = share_above / p if p > 0 else math.inf
    if ratio <= 1.0:
        threshold = tail_start
    elif shape == 0.0:
        threshold = tail_start + scale * math.log(ratio)
    else:
        threshold = tail_start + scale / shape * (ratio**shape - 1.0)
    threshold = max(threshold, float(s[-1]))
    if not math.isfinite(threshold) or threshold <= 0:
        raise ExportError(
            f"calibrated threshold {threshold!r} is not a positive number; are the held-out "
            "rows constant?"
        )
    return BudgetThreshold(
        threshold, p, tail_start, mean_excess, float(s[-1]), int(s.size), shape, scale
    )


def pareto_tail(excess: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(shape, scale) of a generalised Pareto law fitted to excesses over the tail's start:
    shape 0 and scale their mean below MIN_SHAPE_FIT excesses, else probability-weighted
    moments (Hosking and Wallis 1987), the shape held within +-MAX_SHAPE.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> [round(v, 1) for v in pareto_tail(rng.exponential(2.0, size=20))]  # too few: shape 0
    [0.0, 2.7]
    >>> shape, scale = pareto_tail(rng.uniform(0.0, 1.0, size=4000))  # bounded: shape -1
    >>> shape
    -0.5
    """
    y = np.sort(np.asarray(excess, dtype=np.float64))
    mean = float(np.mean(y)) if y.size else 0.0
    if y.size < MIN_SHAPE_FIT or mean <= 0.0:
        return 0.0, mean
    plotting = (np.arange(1, y.size + 1) - 0.35) / y.size
    a1 = float(np.mean(y * (1.0 - plotting)))
    if mean - 2.0 * a1 <= 0.0:
        return MAX_SHAPE, mean
    k = mean / (mean - 2.0 * a1) - 2.0  # Hosking's k; the shape is -k
    shape = float(np.clip(-k, -MAX_SHAPE, MAX_SHAPE))
    # the scale that keeps the mean excess, sigma / (1 - shape), at what was seen
    return shape, mean * (1.0 - shape)


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
