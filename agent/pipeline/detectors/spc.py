"""The SPC detector: an I-MR chart per channel with the limits from the bundle."""

from __future__ import annotations

import numpy as np

from agent.bundles.manifest import SpcLimits
from agent.core.spc import ImrChart, ImrLimits, ImrState
from agent.pipeline.detectors.base import FloatArray

IN_CONTROL = "in-control"
NO_DATA = "no-data"


class SpcDetector:
    """Charts every row of a line; reports, per channel, the first rule it broke."""

    def __init__(self, limits: ImrLimits, flatline_samples: int = 0) -> None:
        self.chart = ImrChart(limits, flatline_samples=flatline_samples)

    @classmethod
    def from_manifest(cls, spc: SpcLimits, flatline_samples: int = 0) -> SpcDetector:
        """Build from the limits a bundle carries."""
        limits = ImrLimits(
            center=np.asarray(spc.center, dtype=np.float64),
            sigma=np.asarray(spc.sigma, dtype=np.float64),
            mr_bar=np.asarray(spc.mr_bar, dtype=np.float64),
            nsigmas=spc.nsigmas,
        )
        return cls(limits, flatline_samples)

    def update(self, row: FloatArray) -> ImrState:
        """Chart one row; NaN marks a channel without a good reading (a gap in its chart)."""
        return self.chart.update(row)

    def reset(self) -> None:
        """Forget the previous row."""
        self.chart.reset()

    def state(self) -> dict[str, object]:
        """The chart's running state, JSON-able (to survive a restart)."""
        return self.chart.state()

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`."""
        self.chart.restore(state)

    @staticmethod
    def describe(state: ImrState, index: int, has_data: bool) -> str:
        """The state of one channel in words SCADA can show."""
        if not has_data:
            return NO_DATA
        if state.beyond_limits[index]:
            return "beyond-limits"
        if state.mr_beyond[index]:
            return "moving-range-high"
        if state.flatline[index]:
            return "flatline"
        return IN_CONTROL
