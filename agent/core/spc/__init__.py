"""Statistical process control, pure and vectorised across the channels of a line.

Modules: `base` (the point every chart returns, `run_series`), `constants` (d2, d3, c4, A2,
A3, B3, B4, D3, D4 for n = 2..25, printed or exact), `phase1` (iterative Phase I), `imr`
(Individuals and Moving Range), `subgroup` (X-bar with R or S), `ewma`, `cusum` (tabular,
with FIR headstart), `attribute` (p, np, c, u). Run rules and capability indices live in
`rules` and `capability`.
"""

from agent.core.spc.attribute import AttributeChart, AttributeLimits, fit_attribute
from agent.core.spc.base import BoolArray, ChartPoint, FloatArray, Series, run_series
from agent.core.spc.capability import Capability, spec_problem
from agent.core.spc.constants import SubgroupConstants, subgroup_constants
from agent.core.spc.cusum import CusumChart, CusumPoint
from agent.core.spc.ewma import EwmaChart
from agent.core.spc.imr import (
    D2_N2,
    D4_N2,
    SIGMA_ESTIMATORS,
    ImrChart,
    ImrLimits,
    ImrState,
    fit_imr,
)
from agent.core.spc.phase1 import Phase1Report
from agent.core.spc.rules import (
    NELSON,
    WESTERN_ELECTRIC,
    RuleSet,
    RunRules,
    Violation,
    find_violations,
    rule_set,
)
from agent.core.spc.subgroup import SubgroupPoint, XbarChart, XbarLimits, fit_xbar

__all__ = [
    "D2_N2",
    "D4_N2",
    "NELSON",
    "SIGMA_ESTIMATORS",
    "WESTERN_ELECTRIC",
    "AttributeChart",
    "AttributeLimits",
    "BoolArray",
    "Capability",
    "ChartPoint",
    "CusumChart",
    "CusumPoint",
    "EwmaChart",
    "FloatArray",
    "ImrChart",
    "ImrLimits",
    "ImrState",
    "Phase1Report",
    "RuleSet",
    "RunRules",
    "Series",
    "SubgroupConstants",
    "SubgroupPoint",
    "Violation",
    "XbarChart",
    "XbarLimits",
    "find_violations",
    "fit_attribute",
    "fit_imr",
    "fit_xbar",
    "rule_set",
    "run_series",
    "spec_problem",
    "subgroup_constants",
]
