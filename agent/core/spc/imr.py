"""Individuals and Moving Range (I-MR) charts, vectorised across the channels of a line.

Phase I (`fit_imr`) estimates the centre and sigma from normal data. The textbook estimator is
the short-term sigma = MR-bar / d2 (d2 = 1.128 for moving ranges of two). Process signals that
wander slowly (temperatures following the hall, pressure following the material) are
positively autocorrelated: MR-bar then sees only the sample-to-sample noise and the limits are
far too tight, so the chart alarms all day on a healthy line. `sigma="larger"` takes, per
channel, the larger of the short-term and the overall standard deviation (the latter is the
Levey-Jennings choice), and says which one it used. Phase II (`ImrChart.update`) applies the
fixed limits to the live stream, one row at a time.

`constants="table"` (default) uses the printed d2 = 1.128, d3 = 0.853, D4 = 3.267 for moving
ranges of two; `"exact"` uses 2/sqrt(pi), sqrt(2 - 4/pi) and 1 + 3 d3/d2. `rounds > 0` drops
reference points beyond the Individuals limits (and the moving ranges that touch them) and
re-estimates, at most that many times (see `phase1`). `update` returns an `ImrState`: the
rule flags the live detector reads, and the two plotted points (`individuals`,
`moving_range`: centre MR-bar, LCL 0, UCL D4 MR-bar, sigma d3 MR-bar / d2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.core.spc.base import (
    BoolArray,
    ChartPoint,
    FloatArray,
    check_state,
    from_json_list,
    to_json_list,
)
from agent.core.spc.constants import subgroup_constants
from agent.core.spc.phase1 import Phase1Report, iterate, masked_mean

D2_N2 = 1.128  # d2 for a moving range of span 2
D3_N2 = 0.853  # d3 for a moving range of span 2
D4_N2 = 3.267  # D4 for a moving range of span 2: UCL of the MR chart = D4 * MR-bar


@dataclass(frozen=True)
class ImrLimits:
    """Fixed Phase II limits for every channel of a line."""

    center: FloatArray
    sigma: FloatArray
    mr_bar: FloatArray
    nsigmas: float = 3.0
    sigma_method: tuple[str, ...] = ()
    d2: float = D2_N2
    d3: float = D3_N2
    d4: float = D4_N2
    report: Phase1Report | None = field(default=None, compare=False)

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
        return self.d4 * self.mr_bar

    @property
    def mr_sigma(self) -> FloatArray:
        """Standard deviation of a moving range: d3 MR-bar / d2."""
        return self.d3 * self.mr_bar / self.d2


SIGMA_ESTIMATORS = ("moving-range", "overall", "larger")


def fit_imr(
    data: FloatArray,
    nsigmas: float = 3.0,
    sigma: str = "moving-range",
    constants: str = "table",
    rounds: int = 0,
    floor_sigma: bool = True,
) -> ImrLimits:
    """Phase I: centre = mean; sigma = MR-bar / d2, the overall std, or the larger of the two.

    A channel that never moved has sigma 0; with `floor_sigma` (the live detector's choice)
    it gets the smallest positive width instead, so any change is beyond its limits.

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
    k = subgroup_constants(2, constants)
    mr_all = np.abs(np.diff(data, axis=0))

    def fit(kept: BoolArray) -> ImrLimits:
        pair = kept[1:] & kept[:-1]
        mr_bar = masked_mean(mr_all, pair)
        short = mr_bar / k.d2
        center = masked_mean(data, kept)
        dev = np.where(kept, data - center, 0.0)
        overall = np.sqrt(np.sum(dev * dev, axis=0) / (np.sum(kept, axis=0) - 1))
        if sigma == "moving-range":
            use_overall = np.zeros(short.shape, dtype=bool)
        elif sigma == "overall":
            use_overall = np.ones(short.shape, dtype=bool)
        else:
            use_overall = overall > short
        chosen = np.where(use_overall, overall, short)
        if floor_sigma:
            # A channel that never moved cannot be charted with zero width; give it the
            # smallest positive width so a change is still visible instead of dividing by 0.
            chosen = np.where(chosen > 0, chosen, np.finfo(np.float64).eps)
        return ImrLimits(
            center=center,
            sigma=chosen,
            mr_bar=mr_bar,
            nsigmas=nsigmas,
            sigma_method=tuple("overall" if o else "moving-range" for o in use_overall),
            d2=k.d2,
            d3=k.d3,
            d4=k.D4,
        )

    def beyond(limits: ImrLimits) -> BoolArray:
        return np.asarray((data > limits.ucl) | (data < limits.lcl))

    limits, report = iterate(fit, beyond, data.shape, rounds)
    return ImrLimits(**{**limits.__dict__, "report": report})


@dataclass(frozen=True)
class ImrState:
    """The outcome of one row: which channels broke which rule."""

    beyond_limits: BoolArray  # Individuals chart, rule 1: one point beyond nsigmas
    mr_beyond: BoolArray  # Moving Range chart above its UCL
    flatline: BoolArray  # unchanged for `flatline_samples` updates in a row
    individuals: ChartPoint | None = None
    moving_range: ChartPoint | None = None

    @property
    def plots(self) -> tuple[ChartPoint, ...]:
        """(Individuals, Moving Range) plotted points."""
        assert self.individuals is not None and self.moving_range is not None
        return (self.individuals, self.moving_range)

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

    plot_names = ("individuals", "moving_range")

    def __init__(self, limits: ImrLimits, flatline_samples: int = 0) -> None:
        self.limits = limits
        self.flatline_samples = flatline_samples
        n = limits.center.shape[0]
        self.channels = n
        self._last = np.full(n, np.nan)
        self._same = np.zeros(n, dtype=np.int64)
        # The limits are fixed in Phase II: compute them once, not per row.
        self._lcl, self._ucl = limits.lcl, limits.ucl
        self._mr_ucl, self._mr_sigma = limits.mr_ucl, limits.mr_sigma
        self._zero = np.zeros(n)

    def reset(self) -> None:
        """Forget the previous row (after a gap, the first moving range is undefined)."""
        self._last[:] = np.nan
        self._same[:] = 0

    def update(self, row: FloatArray) -> ImrState:
        """Chart one row of values (one per channel)."""
        lim = self.limits
        beyond = (row > self._ucl) | (row < self._lcl)
        mr = np.abs(row - self._last)  # NaN on the first row: NaN comparisons are False
        mr_beyond = mr > self._mr_ucl
        if self.flatline_samples > 0:
            self._same = np.where(mr == 0.0, self._same + 1, 0)
            flat = self._same >= self.flatline_samples
        else:
            flat = np.zeros_like(beyond)
        self._last = row.astype(np.float64, copy=True)
        return ImrState(
            beyond_limits=beyond,
            mr_beyond=mr_beyond,
            flatline=flat,
            individuals=ChartPoint(self._last, lim.center, self._lcl, self._ucl, lim.sigma),
            moving_range=ChartPoint(mr, lim.mr_bar, self._zero, self._mr_ucl, self._mr_sigma),
        )

    def state(self) -> dict[str, object]:
        """The previous row and the flatline counters, JSON-able."""
        return {
            "chart": "imr",
            "channels": self.channels,
            "last": to_json_list(self._last),
            "same": [int(v) for v in self._same],
        }

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`; ValueError if it belongs to another chart."""
        check_state(state, "imr", {"channels": self.channels})
        self._last = from_json_list(state["last"])  # type: ignore[arg-type]
        self._same = np.asarray(state["same"], dtype=np.int64)
