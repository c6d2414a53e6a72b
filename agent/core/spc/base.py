"""What every SPC chart returns per plotted point, vectorised across the channels of a line.

A chart's `update` returns one `ChartPoint` per plotted point: the statistic of every channel,
its centre line, control limits, and the standard deviation of the statistic at that point
(`sigma`, which for an EWMA varies with time). Run rules work on `z`, the statistic in units of
that sigma, so the same rule engine serves every chart with symmetric limits; `beyond` is the
statistic outside its actual limits, which is rule 1 also where a limit is clipped at 0.

A chart with two plots (I-MR, X-bar with R or S, CUSUM upper and lower) returns a point type
whose `plots` holds one `ChartPoint` per plot, in the order of the chart's `plot_names`;
a plain `ChartPoint` is its own single plot. `run_series` runs a streaming chart over a
whole series and stacks what it plotted, so a batch result is the streaming result by
construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def outside(statistic: FloatArray, lcl: FloatArray, ucl: FloatArray) -> BoolArray:
    """True where a statistic is outside its control limits (NaN: never)."""
    return (statistic > ucl) | (statistic < lcl)


def sigma_units(statistic: FloatArray, center: FloatArray, sigma: FloatArray) -> FloatArray:
    """(statistic - center) / sigma, with 0 on the centre line even when sigma is 0."""
    diff = statistic - center
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff == 0.0, 0.0, diff / sigma)


@dataclass(frozen=True)
class ChartPoint:
    """One plotted point of every channel: statistic, centre, limits, sigma of the statistic."""

    statistic: FloatArray
    center: FloatArray
    lcl: FloatArray
    ucl: FloatArray
    sigma: FloatArray

    @property
    def beyond(self) -> BoolArray:
        """True where the statistic is outside its control limits (NaN: never)."""
        return outside(self.statistic, self.lcl, self.ucl)

    @property
    def z(self) -> FloatArray:
        """The statistic in sigma units from the centre line (for run rules).

        With sigma 0 (constant reference data) a point on the centre line is 0 and any other
        point is +/-inf, so it is beyond every zone, as it is beyond the collapsed limits.
        """
        return sigma_units(self.statistic, self.center, self.sigma)

    @property
    def plots(self) -> tuple[ChartPoint, ...]:
        """A single-plot chart: the point itself."""
        return (self,)


class PlottedPoint(Protocol):
    """Anything a chart returns per plotted point: one ChartPoint per plot."""

    @property
    def plots(self) -> tuple[ChartPoint, ...]:
        """One ChartPoint per plot of the chart, in the order of its `plot_names`."""
        ...


@dataclass(frozen=True)
class Series:
    """A whole plotted series of one plot: every field is (points, channels)."""

    statistic: FloatArray
    center: FloatArray
    lcl: FloatArray
    ucl: FloatArray
    sigma: FloatArray

    @property
    def beyond(self) -> BoolArray:
        """True where the statistic is outside its limits."""
        return outside(self.statistic, self.lcl, self.ucl)

    @property
    def z(self) -> FloatArray:
        """The statistic in sigma units (see `ChartPoint.z`)."""
        return sigma_units(self.statistic, self.center, self.sigma)


def stack(points: Sequence[ChartPoint], channels: int) -> Series:
    """Stack the points of one plot into a Series (an empty one for no points)."""
    if not points:
        empty = np.empty((0, channels))
        return Series(empty, empty, empty, empty, empty)
    return Series(
        statistic=np.stack([p.statistic for p in points]),
        center=np.stack([np.broadcast_to(p.center, p.statistic.shape) for p in points]),
        lcl=np.stack([np.broadcast_to(p.lcl, p.statistic.shape) for p in points]),
        ucl=np.stack([np.broadcast_to(p.ucl, p.statistic.shape) for p in points]),
        sigma=np.stack([np.broadcast_to(p.sigma, p.statistic.shape) for p in points]),
    )


def run_series(
    update: Callable[..., PlottedPoint | None],
    *columns: FloatArray,
) -> tuple[Series, ...]:
    """Feed a streaming chart's `update` row by row; one Series per plot.

    `columns` are arrays of shape (T, C) (or (T,) for one channel) whose row t is passed to
    `update` as its positional arguments; rows on which `update` returns None (a subgroup
    still filling) plot nothing.

    Examples
    --------
    >>> from agent.core.spc.ewma import EwmaChart
    >>> chart = EwmaChart(center=np.array([0.0]), sigma=np.array([1.0]), lam=0.5)
    >>> (series,) = run_series(chart.update, np.array([[1.0], [1.0]]))
    >>> series.statistic[:, 0].tolist()
    [0.5, 0.75]
    """
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    channels = arrays[0].shape[1]
    per_plot: list[list[ChartPoint]] | None = None
    n_plots = 0
    for t in range(arrays[0].shape[0]):
        point = update(*(a[t] for a in arrays))
        if point is None:
            continue
        plots = point.plots
        if per_plot is None:
            n_plots = len(plots)
            per_plot = [[] for _ in range(n_plots)]
        for i, p in enumerate(plots):
            per_plot[i].append(p)
    if per_plot is None:
        return (stack([], channels),)
    return tuple(stack(p, channels) for p in per_plot)


def to_json_list(values: FloatArray) -> list[float | None]:
    """A float array as a JSON-able list, NaN as None."""
    return [None if v != v else v for v in np.asarray(values, dtype=np.float64).tolist()]


def from_json_list(values: Sequence[float | None]) -> FloatArray:
    """Inverse of `to_json_list`."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def check_state(state: dict[str, object], kind: str, params: dict[str, object]) -> None:
    """ValueError unless a saved state is of this chart kind with the same parameters."""
    if state.get("chart") != kind:
        raise ValueError(f"state is of chart {state.get('chart')!r}, not {kind!r}")
    for name, value in params.items():
        if state.get(name) != value:
            raise ValueError(
                f"state has {name}={state.get(name)!r}, this chart has {name}={value!r}"
            )


def as_channels(value: FloatArray | float, channels: int, name: str) -> FloatArray:
    """A per-channel float array from a scalar or an array of the right length."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(channels, float(arr))
    if arr.shape != (channels,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({channels},)")
    return arr.copy()
