"""X-bar with R and X-bar with S charts for rational subgroups of n = 2..25 samples.

Phase I (`fit_xbar`) takes the reference subgroups as an array (subgroups, n, channels) and
estimates the process sigma without bias: R-bar / d2 for the range chart, S-bar / c4 for the
standard-deviation chart. With the textbook 3-sigma limits and `constants="table"` the limits
are the printed formulas (x-double-bar +/- A2 R-bar, D3 R-bar .. D4 R-bar; +/- A3 S-bar,
B3 S-bar .. B4 S-bar); for any other `nsigmas` they are centre +/- L sigma-of-the-statistic,
with the lower limit of R and S clipped at 0. Phase II (`XbarChart.update`) takes one sample
row at a time (one value per channel), keeps running sums (Welford's mean and sum of squares,
minimum and maximum: O(1) per sample), and returns a `SubgroupPoint` when the n-th sample of
a subgroup arrives, None before. A NaN sample makes that channel's point NaN (a gap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent.core.spc.base import ChartPoint, FloatArray, check_state, from_json_list, to_json_list
from agent.core.spc.constants import SubgroupConstants, check_subgroup_size, subgroup_constants
from agent.core.spc.phase1 import Phase1Report, iterate, masked_mean

SPREADS = ("range", "stdev")


@dataclass(frozen=True)
class XbarLimits:
    """Fixed limits of an X-bar chart and its R or S companion, per channel."""

    n: int
    spread: str  # "range" or "stdev"
    constants: SubgroupConstants
    nsigmas: float
    center: FloatArray  # x-double-bar
    spread_center: FloatArray  # R-bar or S-bar
    sigma: FloatArray  # the process sigma: R-bar / d2 or S-bar / c4
    report: Phase1Report | None = None

    @property
    def xbar_sigma(self) -> FloatArray:
        """Standard deviation of a subgroup mean."""
        return self.sigma / math.sqrt(self.n)

    @property
    def spread_sigma(self) -> FloatArray:
        """Standard deviation of R (d3 sigma) or of S (sigma sqrt(1 - c4^2))."""
        k = self.constants
        if self.spread == "range":
            return k.d3 * self.sigma
        return self.sigma * math.sqrt(1.0 - k.c4 * k.c4)

    def _textbook(self) -> bool:
        return self.constants.kind == "table" and self.nsigmas == 3.0

    @property
    def xbar_limits(self) -> tuple[FloatArray, FloatArray]:
        """(LCL, UCL) of the X-bar chart."""
        k = self.constants
        if self._textbook():
            half = (k.A2 if self.spread == "range" else k.A3) * self.spread_center
        else:
            half = self.nsigmas * self.xbar_sigma
        return self.center - half, self.center + half

    @property
    def spread_limits(self) -> tuple[FloatArray, FloatArray]:
        """(LCL, UCL) of the R or S chart; the LCL is never below 0."""
        k = self.constants
        if self._textbook():
            low, high = (k.D3, k.D4) if self.spread == "range" else (k.B3, k.B4)
            return low * self.spread_center, high * self.spread_center
        half = self.nsigmas * self.spread_sigma
        return np.maximum(self.spread_center - half, 0.0), self.spread_center + half

    def points(self, xbar: FloatArray, spread: FloatArray) -> SubgroupPoint:
        """The two plotted points of one subgroup's statistics."""
        x_lcl, x_ucl = self.xbar_limits
        s_lcl, s_ucl = self.spread_limits
        return SubgroupPoint(
            xbar=ChartPoint(xbar, self.center, x_lcl, x_ucl, self.xbar_sigma),
            spread=ChartPoint(spread, self.spread_center, s_lcl, s_ucl, self.spread_sigma),
        )


@dataclass(frozen=True)
class SubgroupPoint:
    """One subgroup on both plots: the X-bar chart and its R or S companion."""

    xbar: ChartPoint
    spread: ChartPoint

    @property
    def plots(self) -> tuple[ChartPoint, ...]:
        """(X-bar, R or S)."""
        return (self.xbar, self.spread)


def subgroup_statistics(subgroups: FloatArray, spread: str) -> tuple[FloatArray, FloatArray]:
    """Means and ranges (or standard deviations, ddof 1) of (subgroups, n, channels)."""
    first = subgroups[:, :1, :]
    means = first[:, 0, :] + np.mean(subgroups - first, axis=1)  # exact for constant data
    if spread == "range":
        return means, np.ptp(subgroups, axis=1)
    return means, np.std(subgroups, axis=1, ddof=1)


def fit_xbar(
    subgroups: FloatArray,
    spread: str = "range",
    nsigmas: float = 3.0,
    constants: str = "table",
    rounds: int = 0,
) -> XbarLimits:
    """Phase I of an X-bar/R or X-bar/S chart from (subgroups, n, channels).

    `rounds > 0` drops subgroups beyond either chart's limits and re-estimates (see `phase1`).

    Examples
    --------
    >>> data = np.array([[[1.0], [3.0]], [[2.0], [2.0]], [[2.0], [4.0]]])
    >>> limits = fit_xbar(data)
    >>> round(float(limits.center[0]), 4), round(float(limits.spread_center[0]), 4)
    (2.3333, 1.3333)
    >>> round(float(limits.xbar_limits[1][0]), 4)  # 2.3333 + 1.880 * 1.3333
    4.84
    """
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    if subgroups.ndim != 3:
        raise ValueError("fit_xbar needs an array of shape (subgroups, n, channels)")
    m, n, channels = subgroups.shape
    check_subgroup_size(n)
    if m < 2:
        raise ValueError(f"fit_xbar needs at least 2 subgroups, got {m}")
    k = subgroup_constants(n, constants)
    means, spreads = subgroup_statistics(subgroups, spread)

    def fit(kept: np.ndarray) -> XbarLimits:
        spread_center = masked_mean(spreads, kept)
        unbias = k.d2 if spread == "range" else k.c4
        return XbarLimits(
            n=n,
            spread=spread,
            constants=k,
            nsigmas=nsigmas,
            center=masked_mean(means, kept),
            spread_center=spread_center,
            sigma=spread_center / unbias,
        )

    def beyond(limits: XbarLimits) -> np.ndarray:
        point = limits.points(means, spreads)
        return np.asarray(point.xbar.beyond | point.spread.beyond)

    limits, report = iterate(fit, beyond, (m, channels), rounds)
    return XbarLimits(**{**limits.__dict__, "report": report})


class XbarChart:
    """Streaming X-bar/R or X-bar/S chart over all channels: one sample row per update.

    Examples
    --------
    >>> limits = fit_xbar(np.array([[[1.0], [3.0]], [[2.0], [2.0]], [[2.0], [4.0]]]))
    >>> chart = XbarChart(limits)
    >>> chart.update(np.array([2.0])) is None
    True
    >>> point = chart.update(np.array([9.0]))
    >>> float(point.xbar.statistic[0]), bool(point.xbar.beyond[0]), bool(point.spread.beyond[0])
    (5.5, True, True)
    """

    plot_names = ("xbar", "range")

    def __init__(self, limits: XbarLimits) -> None:
        self.limits = limits
        self.plot_names = ("xbar", limits.spread)
        self.channels = limits.center.shape[0]
        # Phase II limits are fixed: compute them once, not per subgroup.
        self._x = (*limits.xbar_limits, limits.xbar_sigma)
        self._s = (*limits.spread_limits, limits.spread_sigma)
        self.reset()

    def reset(self) -> None:
        """Drop the subgroup being filled."""
        c = self.channels
        self._count = 0
        self._mean = np.zeros(c)
        self._m2 = np.zeros(c)
        self._lo = np.full(c, np.inf)
        self._hi = np.full(c, -np.inf)

    def update(self, row: FloatArray) -> SubgroupPoint | None:
        """Add one sample per channel; the subgroup's points when it is complete."""
        self._count += 1
        delta = row - self._mean
        self._mean = self._mean + delta / self._count
        self._m2 = self._m2 + delta * (row - self._mean)
        self._lo = np.minimum(self._lo, row)  # NaN propagates: the subgroup is a gap
        self._hi = np.maximum(self._hi, row)
        if self._count < self.limits.n:
            return None
        n = self.limits.n
        if self.limits.spread == "range":
            spread = self._hi - self._lo
        else:
            spread = np.sqrt(np.maximum(self._m2, 0.0) / (n - 1))
        lim = self.limits
        point = SubgroupPoint(
            xbar=ChartPoint(self._mean.copy(), lim.center, *self._x),
            spread=ChartPoint(spread, lim.spread_center, *self._s),
        )
        self.reset()
        return point

    def state(self) -> dict[str, object]:
        """The subgroup being filled, JSON-able."""
        return {
            "chart": f"xbar-{self.limits.spread}",
            "channels": self.channels,
            "n": self.limits.n,
            "count": self._count,
            "mean": to_json_list(self._mean),
            "m2": to_json_list(self._m2),
            "lo": to_json_list(self._lo),
            "hi": to_json_list(self._hi),
        }

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`; ValueError if it is of another chart."""
        check_state(
            state, f"xbar-{self.limits.spread}", {"channels": self.channels, "n": self.limits.n}
        )
        self._count = int(state["count"])  # type: ignore[call-overload]
        for name in ("mean", "m2", "lo", "hi"):
            setattr(self, f"_{name}", from_json_list(state[name]))  # type: ignore[arg-type]
