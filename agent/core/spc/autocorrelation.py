"""Lag-1 autocorrelation: the check that says whether Shewhart limits can be trusted.

Shewhart limits and the run rules assume independent points. A historian sampled every second
rarely gives that: each reading is mostly the one before it, MR-bar underestimates sigma, and
nearly every point breaks a rule. `lag1` measures it; `ar1_residuals` gives the residuals of an
AR(1) fit (x_t − c − φ·x_{t−1}), which are close to independent and can be charted instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Below this size of r1, autocorrelation barely moves the limits (Montgomery, ch. 10).
PRACTICAL_R1 = 0.2


@dataclass(frozen=True)
class Autocorrelation:
    """Lag-1 autocorrelation of a series and whether it is too large to ignore."""

    r1: float | None
    n: int
    bound: float  # 2/√n, the approximate 95 % bound of r1 for independent points
    significant: bool

    def to_dict(self) -> dict[str, float | int | bool | None]:
        """A JSON-able dict of the four fields."""
        return {"r1": self.r1, "n": self.n, "bound": self.bound, "significant": self.significant}


def lag1(values: FloatArray) -> Autocorrelation:
    """r1 over pairs of consecutive points that are both present (NaN is a gap).

    Significant means |r1| above both 2/√n and PRACTICAL_R1.

    >>> a = lag1(np.sin(np.arange(100) / 5))  # a slow wave: each point near the last
    >>> a.significant, round(a.r1, 2)
    (True, 0.97)
    """
    x = np.asarray(values, dtype=np.float64)
    present = x[np.isfinite(x)]
    n = int(present.size)
    bound = 2.0 / math.sqrt(n) if n else math.inf
    pairs = np.isfinite(x[:-1]) & np.isfinite(x[1:])
    if n < 3 or not pairs.any():
        return Autocorrelation(None, n, bound, False)
    mean = float(present.mean())
    denominator = float(np.sum((present - mean) ** 2))
    if denominator == 0.0:
        return Autocorrelation(None, n, bound, False)
    numerator = float(np.sum((x[:-1][pairs] - mean) * (x[1:][pairs] - mean)))
    r1 = numerator / denominator
    return Autocorrelation(r1, n, bound, abs(r1) > max(bound, PRACTICAL_R1))


def ar1_fit(values: FloatArray) -> tuple[float, float]:
    """(c, φ) of x_t = c + φ·x_{t−1} by least squares over consecutive present pairs."""
    x = np.asarray(values, dtype=np.float64)
    pairs = np.isfinite(x[:-1]) & np.isfinite(x[1:])
    previous, current = x[:-1][pairs], x[1:][pairs]
    if previous.size < 2 or float(np.var(previous)) == 0.0:
        raise ValueError("an AR(1) fit needs at least 3 readings that vary")
    phi = float(np.cov(previous, current, ddof=1)[0, 1] / np.var(previous, ddof=1))
    return float(current.mean() - phi * previous.mean()), phi


def ar1_residuals(values: FloatArray, c: float, phi: float) -> FloatArray:
    """x_t − c − φ·x_{t−1} per point; NaN for the first point and after a gap.

    >>> ar1_residuals(np.array([1.0, 2.0, 3.0]), 0.0, 1.0).tolist()
    [nan, 1.0, 1.0]
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    out[1:] = x[1:] - c - phi * x[:-1]
    return out
