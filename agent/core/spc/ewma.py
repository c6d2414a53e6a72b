"""EWMA chart (exponentially weighted moving average), vectorised across channels.

z_t = lam x_t + (1 - lam) z_{t-1}, z_0 = the centre (the target, or the Phase I mean). The
variance of z_t is sigma^2 lam / (2 - lam) (1 - (1 - lam)^(2t)), so with `exact=True` (the
default) the limits start narrow and widen to their asymptote centre +/- L sigma
sqrt(lam / (2 - lam)); `exact=False` uses the asymptote from the first point. The chart keeps
(1 - lam)^(2t) per channel, so an update is O(1). A NaN reading is a gap for its channel: the
point is NaN and z and t are held, so the next reading continues the same average.
"""

from __future__ import annotations

import math

import numpy as np

from agent.core.spc.base import (
    ChartPoint,
    FloatArray,
    as_channels,
    check_state,
    from_json_list,
    to_json_list,
)


def check_ewma(lam: float, nsigmas: float) -> None:
    """ValueError unless 0 < lam <= 1 and nsigmas > 0."""
    if not 0.0 < lam <= 1.0:
        raise ValueError(f"lambda must be in (0, 1], got {lam}")
    if not nsigmas > 0.0:
        raise ValueError(f"nsigmas must be > 0, got {nsigmas}")


class EwmaChart:
    """Streaming EWMA chart over all channels.

    Parameters
    ----------
    center, sigma
        The in-control mean and the standard deviation of one reading, per channel (a scalar
        applies to every channel); from Phase I (`fit_individuals`) or known standards.
    lam
        The weight of the newest reading, 0 < lam <= 1 (lam = 1 is a Shewhart chart).
    nsigmas
        L, the width of the limits in standard deviations of z.
    exact
        Time-varying limits (True) or the asymptotic ones (False).

    Examples
    --------
    >>> chart = EwmaChart(center=10.0, sigma=1.0, lam=0.1, nsigmas=2.7)
    >>> p = chart.update(np.array([9.45]))
    >>> round(float(p.statistic[0]), 3), round(float(p.ucl[0]), 3)
    (9.945, 10.27)
    """

    plot_names = ("ewma",)

    def __init__(
        self,
        center: FloatArray | float,
        sigma: FloatArray | float,
        lam: float = 0.2,
        nsigmas: float = 3.0,
        exact: bool = True,
        channels: int | None = None,
    ) -> None:
        check_ewma(lam, nsigmas)
        c = channels if channels is not None else np.asarray(center).size
        self.center = as_channels(center, c, "center")
        self.sigma = as_channels(sigma, c, "sigma")
        self.lam = lam
        self.nsigmas = nsigmas
        self.exact = exact
        self.channels = c
        self._steady = self.sigma * math.sqrt(lam / (2.0 - lam))  # sd of z as t grows
        self._step = (1.0 - lam) ** 2
        self.reset()

    def reset(self) -> None:
        """Start again from the centre line (after a process change, not after a restart)."""
        self._z = self.center.copy()
        self._decay = np.ones(self.channels)  # (1 - lam)^(2t)

    def update(self, row: FloatArray) -> ChartPoint:
        """Chart one reading per channel."""
        z = self._z + self.lam * (row - self._z)  # = lam x + (1 - lam) z, exact when x == z
        decay = self._decay * self._step
        statistic = z  # NaN where the reading is
        gap = np.isnan(row)
        if gap.any():
            z, decay = np.where(gap, self._z, z), np.where(gap, self._decay, decay)
        self._z, self._decay = z, decay
        width = self._steady * np.sqrt(1.0 - decay) if self.exact else self._steady
        half = self.nsigmas * width
        return ChartPoint(statistic, self.center, self.center - half, self.center + half, width)

    def _params(self) -> dict[str, object]:
        return {
            "channels": self.channels,
            "lambda": self.lam,
            "center": to_json_list(self.center),
        }

    def state(self) -> dict[str, object]:
        """The running average and its age, JSON-able."""
        return {
            "chart": "ewma",
            **self._params(),
            "z": to_json_list(self._z),
            "decay": to_json_list(self._decay),
        }

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`; ValueError if it belongs to another chart."""
        check_state(state, "ewma", self._params())
        self._z = from_json_list(state["z"])  # type: ignore[arg-type]
        self._decay = from_json_list(state["decay"])  # type: ignore[arg-type]
