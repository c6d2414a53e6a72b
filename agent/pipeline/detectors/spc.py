"""The SPC detector: an I-MR chart per channel with the limits from the bundle.

Its score is the number of channels breaking a rule on this row (threshold 0.5: one is enough),
with each breaking channel's share as its contribution; `last` keeps the chart's whole state
of the row (which rule each channel broke), for the SPC states SCADA shows.
"""

from __future__ import annotations

import numpy as np

from agent.bundles.manifest import SpcLimits
from agent.core.spc import ImrChart, ImrLimits, ImrState
from agent.pipeline.detectors.base import FloatArray
from agent.types import Score

IN_CONTROL = "in-control"
NO_DATA = "no-data"
#: One channel breaking a rule is enough: the score counts them.
SPC_THRESHOLD = 0.5


class SpcDetector:
    """Charts every row of a line; reports, per channel, the first rule it broke."""

    name = "spc"

    def __init__(self, limits: ImrLimits, flatline_samples: int = 0) -> None:
        self.chart = ImrChart(limits, flatline_samples=flatline_samples)
        #: The chart's state after the last row (None before the first).
        self.last: ImrState | None = None

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

    def update(self, row: FloatArray) -> Score:
        """Chart one row (NaN marks a channel without a good reading, a gap in its chart):
        how many channels broke a rule, each breaking channel's share as its contribution."""
        self.last = state = self.chart.update(row)
        broken = state.out_of_control
        count = int(np.count_nonzero(broken))
        # tolist() gives Python floats in one call: this runs on every row of the hot loop.
        shares = (broken / count if count else broken.astype(np.float64)).tolist()
        return Score(float(count), SPC_THRESHOLD, tuple(shares))

    def observe_alarm(self, active: bool) -> None:
        """The limits are fixed in Phase I: the alarm changes nothing."""

    def reset(self) -> None:
        """Forget the previous row."""
        self.chart.reset()
        self.last = None

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
