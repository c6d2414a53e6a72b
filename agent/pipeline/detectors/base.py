"""The detector protocol shared by the live loop and offline replay."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from agent.types import Score

FloatArray = npt.NDArray[np.float64]


class Detector(Protocol):
    """Scores one window (rows x channels, raw engineering values); higher is more anomalous."""

    def score_one(self, window: FloatArray) -> Score:
        """Score a window without learning from it."""
        ...

    def learn_one(self, window: FloatArray) -> None:
        """Learn from a window known to be normal (a no-op for frozen models)."""
        ...
