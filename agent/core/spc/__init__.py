"""Statistical process control, pure and vectorised across the channels of a line.

Modules: `imr` (Individuals and Moving Range), `base` (the point every chart returns).
"""

from agent.core.spc.base import BoolArray, ChartPoint, FloatArray
from agent.core.spc.imr import (
    D2_N2,
    D4_N2,
    SIGMA_ESTIMATORS,
    ImrChart,
    ImrLimits,
    ImrState,
    fit_imr,
)

__all__ = [
    "D2_N2",
    "D4_N2",
    "SIGMA_ESTIMATORS",
    "BoolArray",
    "ChartPoint",
    "FloatArray",
    "ImrChart",
    "ImrLimits",
    "ImrState",
    "fit_imr",
]
