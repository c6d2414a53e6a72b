"""Tabular CUSUM (Page's cumulative sum), upper and lower, with the FIR headstart option.

With target mu0, sigma, K = k sigma and H = h sigma:
C+_t = max(0, x_t - (mu0 + K) + C+_{t-1}), C-_t = max(0, (mu0 - K) - x_t + C-_{t-1}).
The chart signals when C+ or C- exceeds H. N+ and N- count the consecutive periods each sum
has been above zero: when a sum signals, the shift began about N periods before.

What a `CusumPoint` means: two plots, `upper` (C+) and `lower` (C-), both plotted as the
non-negative sums Montgomery tabulates (not a mirrored C- below zero). Each is a `ChartPoint`
with centre 0, LCL 0, UCL = H and sigma = the process sigma, so `beyond` is exactly "the sum
exceeds H" and `z` is the sum in sigma units (run rules other than rule 1 do not apply to a
CUSUM: its points are not independent). The FIR headstart starts both sums at
`headstart * H` (Lucas and Crosier suggest headstart = 0.5) at construction and on `reset()`;
`reset_on_signal=True` restarts a sum at 0 after it signals. A NaN reading holds the sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.core.spc.base import (
    ChartPoint,
    FloatArray,
    as_channels,
    check_state,
    from_json_list,
    to_json_list,
)


def check_cusum(k: float, h: float, headstart: float) -> None:
    """ValueError unless k >= 0, h > 0 and 0 <= headstart < 1."""
    if not k >= 0.0:
        raise ValueError(f"k must be >= 0, got {k}")
    if not h > 0.0:
        raise ValueError(f"h must be > 0, got {h}")
    if not 0.0 <= headstart < 1.0:
        raise ValueError(f"headstart must be in [0, 1) (a fraction of h), got {headstart}")


@dataclass(frozen=True)
class CusumPoint:
    """One period of a tabular CUSUM: both sums and how long each has been above zero."""

    upper: ChartPoint
    lower: ChartPoint
    n_upper: FloatArray
    n_lower: FloatArray

    @property
    def plots(self) -> tuple[ChartPoint, ...]:
        """(upper C+, lower C-)."""
        return (self.upper, self.lower)


class CusumChart:
    """Streaming two-sided tabular CUSUM over all channels: O(1) per reading.

    Examples
    --------
    >>> chart = CusumChart(target=10.0, sigma=1.0, k=0.5, h=5.0)
    >>> for x in (11.0, 12.0, 12.0, 12.0):
    ...     p = chart.update(np.array([x]))
    >>> float(p.upper.statistic[0]), int(p.n_upper[0]), bool(p.upper.beyond[0])
    (5.0, 4, False)
    >>> bool(chart.update(np.array([11.0])).upper.beyond[0])
    True
    """

    plot_names = ("upper", "lower")

    def __init__(
        self,
        target: FloatArray | float,
        sigma: FloatArray | float,
        k: float = 0.5,
        h: float = 5.0,
        headstart: float = 0.0,
        reset_on_signal: bool = False,
        channels: int | None = None,
    ) -> None:
        check_cusum(k, h, headstart)
        c = channels if channels is not None else np.asarray(target).size
        self.target = as_channels(target, c, "target")
        self.sigma = as_channels(sigma, c, "sigma")
        self.k, self.h, self.headstart = k, h, headstart
        self.reset_on_signal = reset_on_signal
        self.channels = c
        self._zero = np.zeros(c)
        self._big_h = h * self.sigma
        self._upper_ref = self.target + k * self.sigma  # mu0 + K
        self._lower_ref = self.target - k * self.sigma  # mu0 - K
        self.reset()

    def reset(self) -> None:
        """Both sums back to the headstart."""
        start = self.headstart * self._big_h
        self._hi = start.copy()
        self._lo = start.copy()
        self._n_hi = np.zeros(self.channels)
        self._n_lo = np.zeros(self.channels)

    def update(self, row: FloatArray) -> CusumPoint:
        """Add one reading per channel."""
        # Every array below is new, never written in place later, so the point can share
        # them with the chart's state without copies (the hot loop updates 1,000+ channels).
        hi = np.maximum(row - self._upper_ref + self._hi, 0.0)
        lo = np.maximum(self._lower_ref - row + self._lo, 0.0)
        n_hi = (self._n_hi + 1.0) * (hi > 0.0)
        n_lo = (self._n_lo + 1.0) * (lo > 0.0)
        gap = np.isnan(row)
        plotted_hi, plotted_lo = hi, lo
        if gap.any():
            hi, lo = np.where(gap, self._hi, hi), np.where(gap, self._lo, lo)
            n_hi, n_lo = np.where(gap, self._n_hi, n_hi), np.where(gap, self._n_lo, n_lo)
        h, zero, sigma = self._big_h, self._zero, self.sigma
        point = CusumPoint(
            upper=ChartPoint(plotted_hi, zero, zero, h, sigma),
            lower=ChartPoint(plotted_lo, zero, zero, h, sigma),
            n_upper=n_hi,
            n_lower=n_lo,
        )
        if self.reset_on_signal:
            fired_hi, fired_lo = hi > h, lo > h
            hi, n_hi = np.where(fired_hi, 0.0, hi), np.where(fired_hi, 0.0, n_hi)
            lo, n_lo = np.where(fired_lo, 0.0, lo), np.where(fired_lo, 0.0, n_lo)
        self._hi, self._lo, self._n_hi, self._n_lo = hi, lo, n_hi, n_lo
        return point

    def _params(self) -> dict[str, object]:
        return {
            "channels": self.channels,
            "k": self.k,
            "h": self.h,
            "target": to_json_list(self.target),
        }

    def state(self) -> dict[str, object]:
        """Both sums and their run lengths, JSON-able (so a restart does not reset them)."""
        return {
            "chart": "cusum",
            **self._params(),
            "upper": to_json_list(self._hi),
            "lower": to_json_list(self._lo),
            "n_upper": to_json_list(self._n_hi),
            "n_lower": to_json_list(self._n_lo),
        }

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`; ValueError if it belongs to another chart."""
        check_state(state, "cusum", self._params())
        self._hi = from_json_list(state["upper"])  # type: ignore[arg-type]
        self._lo = from_json_list(state["lower"])  # type: ignore[arg-type]
        self._n_hi = from_json_list(state["n_upper"])  # type: ignore[arg-type]
        self._n_lo = from_json_list(state["n_lower"])  # type: ignore[arg-type]
