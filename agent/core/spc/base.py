"""What every SPC chart returns per plotted point, vectorised across the channels of a line.

A chart's `update` returns one `ChartPoint` per plotted point: the statistic of every channel,
its centre line, control limits, and the standard deviation of the statistic at that point
(`sigma`, which for an EWMA varies with time). Run rules work on `z`, the statistic in units of
that sigma, so the same rule engine serves every chart with symmetric limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


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
        """True where the statistic is outside its control limits."""
        return (self.statistic > self.ucl) | (self.statistic < self.lcl)

    @property
    def z(self) -> FloatArray:
        """The statistic in sigma units from the centre line (for run rules)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.statistic - self.center) / self.sigma
