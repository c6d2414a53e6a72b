"""Statistical process control, pure and vectorised across the channels of a line.

Modules: `imr` (Individuals and Moving Range), `base` (the point every chart returns).
"""

from agent.core.spc.base import BoolArray, ChartPoint, FloatArray
from agent.core.spc.capability import Capability, spec_problem
from agent.core.spc.imr import (
    D2_N2,
    D4_N2,
    SIGMA_ESTIMATORS,
    ImrChart,
    ImrLimits,
    ImrState,
    fit_imr,
)
from agent.core.spc.rules import (
    NELSON,
    WESTERN_ELECTRIC,
    RuleSet,
    RunRules,
    Violation,
    find_violations,
    rule_set,
)

__all__ = [
    "D2_N2",
    "D4_N2",
    "NELSON",
    "SIGMA_ESTIMATORS",
    "WESTERN_ELECTRIC",
    "BoolArray",
    "Capability",
    "ChartPoint",
    "FloatArray",
    "ImrChart",
    "ImrLimits",
    "ImrState",
    "RuleSet",
    "RunRules",
    "Violation",
    "find_violations",
    "fit_imr",
    "rule_set",
    "spec_problem",
]
