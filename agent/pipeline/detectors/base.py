"""The one detector contract of a line, shared by the live loop and offline replay.

Every detector takes the line's rows one at a time (raw engineering values in the bundle's
channel order, NaN where a tag has no good reading) and says how unusual the row is: a `Score`,
higher is more anomalous, against the detector's own threshold. Thresholding into alarms,
debounce and hysteresis are not the detector's business: the line keeps one table of alarms
(agent.pipeline.line) and tells each detector its alarm's state after every row. A detector's
running state round-trips through JSON-able `state()` / `restore()` (to survive an agent
restart) and `reset()` forgets it. A new detector is one module under agent/pipeline/detectors/
and one line in agent/pipeline/build.py.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from agent.types import Score

FloatArray = npt.NDArray[np.float64]


class Detector(Protocol):
    """Scores one row of a line at a time; higher is more anomalous."""

    #: The detector's name in the line's tables (`LineResult.scores`, the snapshot).
    name: str

    def update(self, row: FloatArray) -> Score | None:
        """Take one raw row; its Score, or None when the detector has no verdict on this row
        (a window not yet full, or a gap in the data)."""
        ...

    def observe_alarm(self, active: bool) -> None:
        """The line's alarm on this detector after the row: a detector may refuse to learn
        from rows while it holds, so a fault never becomes the new normal (River's filter)."""
        ...

    def state(self) -> dict[str, object]:
        """The running state, JSON-able."""
        ...

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`; ValueError if it does not fit this detector."""
        ...

    def reset(self) -> None:
        """Forget the running state (the next row starts afresh)."""
        ...


class WindowModel(Protocol):
    """Scores a whole window (rows x channels, raw values): the VAE's frozen ONNX model, or a
    model on probation beside the one it may replace (agent.runtime.probation)."""

    def score_one(self, window: FloatArray) -> Score:
        """Score a window without learning from it."""
        ...
