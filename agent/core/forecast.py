"""When a drifting tag will cross its limit, at the current rate, with an interval. Pure.

A straight line is fitted by least squares to the tag's readings since its drift began (the
best 'flat, then ramp' hinge of the recent window: `drift_onset`). The tag is drifting
when the fitted rise over the window is at least `MIN_RISE` short-term sigmas and the slope is
at least `MIN_T` standard errors from zero; then the time to the nearest limit ahead (an SPC
control limit, or a spec limit beyond it) is the distance from the fitted level now to that
limit over the slope. The interval takes both the slope's and the level's uncertainty at
`Z` standard errors: `low_s <= seconds <= high_s`, `high_s` infinite when the slow end of the
slope's interval would never get there. A tag already past every limit ahead has no forecast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
MIN_RISE = 3.0  # the fitted change across the window, in short-term sigmas, to call it a drift
MIN_T = 4.0  # the slope in standard errors, to call it a drift
Z = 2.0  # the interval: this many standard errors each way (about 95 %)
MIN_ROWS = 8


@dataclass(frozen=True)
class Limit:
    """One limit of a tag: `upper` or `lower`, of which kind (`SPC`, `spec`), and its value."""

    side: str
    kind: str
    value: float


@dataclass(frozen=True)
class Forecast:
    """A drifting tag's expected time to its next limit, seconds from `ts`, with an interval."""

    tag: str
    ts: float
    seconds: float
    low_s: float
    high_s: float
    rate: float  # engineering units per second
    limit: Limit

    @property
    def minutes(self) -> float:
        """The expected time in minutes."""
        return self.seconds / 60.0


def limits_of(
    low: float, high: float, lsl: float | None = None, usl: float | None = None
) -> list[Limit]:
    """A tag's SPC limits `low`/`high`, and its spec limits where it has them."""
    found = [Limit("lower", "SPC", low), Limit("upper", "SPC", high)]
    if lsl is not None:
        found.append(Limit("lower", "spec", lsl))
    if usl is not None:
        found.append(Limit("upper", "spec", usl))
    return found


def drift_onset(t: FloatArray, y: FloatArray) -> int:
    """Where the current rate began: the best 'flat, then a straight ramp' hinge (least
    squares), so a drift that began inside the window is measured on its own rows.

    Examples
    --------
    >>> t = np.arange(40.0)
    >>> drift_onset(t, np.where(t < 25, 0.0, t - 25.0))
    25
    """
    best, onset = math.inf, 0
    for k in range(0, len(t) - MIN_ROWS + 1):
        hinge = np.maximum(0.0, t - t[k])
        h = hinge - hinge.mean()
        hh = float(h @ h)
        if hh <= 0.0:
            continue
        slope = float(h @ (y - y.mean())) / hh
        sse = float(np.sum((y - y.mean() - slope * h) ** 2))
        if sse < best:
            best, onset = sse, k
    return onset


def forecast(
    tag: str, ts: FloatArray, x: FloatArray, limits: Sequence[Limit], noise: float
) -> Forecast | None:
    """The forecast for one tag from its recent times `ts` and readings `x`, or None when it
    does not drift (or has no limit ahead). `noise`: its short-term sigma (MR-bar / d2).

    Examples
    --------
    >>> t = np.arange(60.0)
    >>> f = forecast("barrel_temp", t, 210.0 + 0.05 * t, [Limit("upper", "SPC", 215.0)], 0.1)
    >>> round(f.seconds, 1), f.limit.side
    (41.0, 'upper')
    >>> forecast("barrel_temp", t, np.full(60, 210.0), [Limit("upper", "SPC", 215.0)], 0.1) is None
    True
    """
    ok = np.isfinite(x) & np.isfinite(ts)
    if int(ok.sum()) < MIN_ROWS:
        return None
    t, y = ts[ok], x[ok]
    start = drift_onset(t, y)
    t, y = t[start:], y[start:]
    t0 = t - t[-1]
    mean_t = float(t0.mean())
    sxx = float(np.sum((t0 - mean_t) ** 2))
    if sxx <= 0.0:
        return None
    slope = float(np.sum((t0 - mean_t) * (y - y.mean()))) / sxx
    level = float(y.mean()) - slope * mean_t  # the fitted value now (t0 = 0)
    residual = y - (level + slope * t0)
    dof = max(len(y) - 2, 1)
    s = math.sqrt(float(np.sum(residual**2)) / dof)
    se_slope = s / math.sqrt(sxx)
    se_level = s * math.sqrt(1.0 / len(y) + mean_t**2 / sxx)
    rise = abs(slope) * float(t0[-1] - t0[0])
    steep = se_slope == 0.0 or abs(slope) >= MIN_T * se_slope
    if slope == 0.0 or rise < MIN_RISE * max(noise, 1e-12) or not steep:
        return None
    side = "upper" if slope > 0 else "lower"
    ahead = [
        lim
        for lim in limits
        if lim.side == side and (lim.value > level if slope > 0 else lim.value < level)
    ]
    if not ahead:
        return None
    limit = min(ahead, key=lambda lim: abs(lim.value - level))
    distance = abs(limit.value - level)
    rate = abs(slope)
    fast = rate + Z * se_slope
    slow = rate - Z * se_slope
    near = max(distance - Z * se_level, 0.0)
    far = distance + Z * se_level
    return Forecast(
        tag=tag,
        ts=float(t[-1]),
        seconds=distance / rate,
        low_s=near / fast,
        high_s=far / slow if slow > 0 else math.inf,
        rate=slope,
        limit=limit,
    )
