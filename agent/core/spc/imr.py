"""Individuals and Moving Range (I-MR) charts, vectorised across the channels of a line.

Phase I (`fit_imr`) estimates the centre and sigma from normal data. The textbook estimator is
the short-term sigma = MR-bar / d2 (d2 = 1.128 for moving ranges of two). Process signals that
wander slowly (temperatures following the hall, pressure following the material) are
positively autocorrelated: MR-bar then sees only the sample-to-sample noise and the limits are
far too tight, so the chart alarms all day on a healthy line. `sigma="larger"` takes, per
channel, the larger of the short-term and the overall standard deviation (the latter is the
Levey-Jennings choice), and says which one it used. Phase II (`ImrChart.update`) applies the
fixed limits to the live stream, one row at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

D2_N2 = 1.128  # d2 for a moving range of span 2
D4_N2 = 3.267  # D4 for a moving range of span 2: UCL of the MR chart = D4 * MR-bar


@dataclass(frozen=True)
class ImrLimits:
    """Fixed Phase II limits for every channel of a line."""

    center: FloatArray
    sigma: FloatArray
    mr_bar: FloatArray
    nsigmas: float = 3.0
    sigma_method: tuple[str, ...] = ()

    @property
    def lcl(self) -> FloatArray:
        """Lower control limit of the Individuals chart."""
        return self.center - self.nsigmas * self.sigma

    @property
    def ucl(self) -> FloatArray:
        """Upper control limit of the Individuals chart."""
        return self.center + self.nsigmas * self.sigma

    @property
    def mr_ucl(self) -> FloatArray:
        """Upper control limit of the Moving Range chart (its LCL is 0 for span 2)."""
        return D4_N2 * self.mr_bar


SIGMA_ESTIMATORS = ("moving-range", "overall", "larger")


def fit_imr(data: FloatArray, nsigmas: float = 3.0, sigma: str = "moving-range") -> ImrLimits:
    """Phase I: centre = mean; sigma = MR-bar / d2, the overall std, or the larger of the two.

    Examples
    --------
    >>> limits = fit_imr(np.array([[10.0], [12.0], [11.0], [13.0]]))
    >>> round(float(limits.center[0]), 3), round(float(limits.sigma[0]), 3)
    (11.5, 1.478)
    """
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError("fit_imr needs a 2-D array with at least two rows")
    if sigma not in SIGMA_ESTIMATORS:
        raise ValueError(f"sigma must be one of {SIGMA_ESTIMATORS}, got {sigma!r}")
    mr_bar = np.mean(np.abs(np.diff(data, axis=0)), axis=0)
    short = mr_bar / D2_N2
    overall = np.std(data, axis=0, ddof=1)
    if sigma == "moving-range":
        use_overall = np.zeros(short.shape, dtype=bool)
    elif sigma == "overall":
        use_overall = np.ones(short.shape, dtype=bool)
    else:
        use_overall = overall > short
    chosen = np.where(use_overall, overall, short)
    # A channel that never moved cannot be charted with zero width; give it the smallest
    # positive width so a change is still visible instead of dividing by zero.
    chosen = np.where(chosen > 0, chosen, np.finfo(np.float64).eps)
    return ImrLimits(
        center=np.mean(data, axis=0),
        sigma=chosen,
        mr_bar=mr_bar,
        nsigmas=nsigmas,
        sigma_method=tuple("overall" if o else "moving-range" for o in use_overall),
    )


@dataclass(frozen=True)
class ImrState:
    """The outcome of one row: which channels broke which rule."""

    beyond_limits: BoolArray  # Individuals chart, rule 1: one point beyond nsigmas
    mr_beyond: BoolArray  # Moving Range chart above its UCL
    flatline: BoolArray  # unchanged for `flatline_samples` updates in a row

    @property
    def out_of_control(self) -> BoolArray:
        """Any rule broken, per channel."""
        return self.beyond_limits | self.mr_beyond | self.flatline


class ImrChart:
    """Streaming I-MR chart over all channels: O(1) per row per channel.

    A frozen sensor (the exact same reading `flatline_samples` updates in a row) is flagged
    too: it is the MR chart sitting at zero, which no Western Electric rule catches but every
    controls engineer checks for. Set `flatline_samples=0` to switch it off.

    Examples
    --------
    >>> chart = ImrChart(fit_imr(np.array([[10.0], [12.0], [11.0], [13.0]])))
    >>> bool(chart.update(np.array([11.0])).out_of_control[0])
    False
    >>> bool(chart.update(np.array([30.0])).beyond_limits[0])
    True
    """

    def __init__(self, limits: ImrLimits, flatline_samples: int = 0) -> None:
        self.limits = limits
        self.flatline_samples = flatline_samples
        n = limits.center.shape[0]
        self._last = np.full(n, np.nan)
        self._same = np.zeros(n, dtype=np.int64)

    def reset(self) -> None:
        """Forget the previous row (after a gap, the first moving range is undefined)."""
        self._last[:] = np.nan
        self._same[:] = 0

    def update(self, row: FloatArray) -> ImrState:
        """Chart one row of values (one per channel)."""
        lim = self.limits
        beyond = (row > lim.ucl) | (row < lim.lcl)
        mr = np.abs(row - self._last)  # NaN on the first row: NaN comparisons are False
        mr_beyond = mr > lim.mr_ucl
        self._same = np.where(mr == 0.0, self._same + 1, 0)
        if self.flatline_samples > 0:
            flat = self._same >= self.flatline_samples
        else:
            flat = np.zeros_like(beyond)
        self._last = row.astype(np.float64, copy=True)
        return ImrState(beyond_limits=beyond, mr_beyond=mr_beyond, flatline=flat)
