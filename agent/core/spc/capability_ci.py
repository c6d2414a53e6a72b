"""Confidence intervals of the capability indices, as the R package qcc computes them.

For n readings and a confidence level 1 − α (0.95 by default), with z = Φ⁻¹(1 − α/2):

=====  =================================================================================
Cp     Cp · √(χ²(α/2, n−1) / (n−1))  ..  Cp · √(χ²(1−α/2, n−1) / (n−1))
Cpk    Cpk · (1 ∓ z · √(1/(9n·Cpk²) + 1/(2(n−1))))   (Bissell's approximation)
Cpm    Cpm · √(χ²(α/2, ν)/ν)  ..,  ν = n(1 + δ²) / (1 + 2δ²), δ = (x̄ − T)/σw
=====  =================================================================================

CPL/CPU take the Cpk formula with their own value; the P indices take the same formulas with
the overall sigma's index in place (as Minitab does). qcc uses z = Φ⁻¹(1 − α) for its one-sided
Cp_l/Cp_u rows; here every interval is two-sided, with z = Φ⁻¹(1 − α/2).

The χ² quantile is the Wilson–Hilferty approximation (no SciPy on the device): for n ≥ 20 it
agrees with the exact quantile to better than 0.1 %, so to the three decimals qcc prints.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from agent.core.spc.capability import Capability

CHI_SQUARE_INDICES = ("cp", "pp")
BISSELL_INDICES = ("cpl", "cpu", "cpk", "ppl", "ppu", "ppk")


def chi_square_quantile(p: float, dof: float) -> float:
    """The p-quantile of χ² with `dof` degrees of freedom (Wilson–Hilferty).

    >>> round(chi_square_quantile(0.975, 124), 1)  # exact: 156.7
    156.7
    """
    if not (0.0 < p < 1.0 and dof > 0):
        raise ValueError(f"chi-square quantile needs 0 < p < 1 and dof > 0, got {p}, {dof}")
    z = NormalDist().inv_cdf(p)
    a = 2.0 / (9.0 * dof)
    return dof * max(1.0 - a + z * math.sqrt(a), 0.0) ** 3


def _chi_square_interval(value: float, dof: float, alpha: float) -> tuple[float, float]:
    low = value * math.sqrt(chi_square_quantile(alpha / 2, dof) / dof)
    high = value * math.sqrt(chi_square_quantile(1 - alpha / 2, dof) / dof)
    return low, high


def _bissell_interval(value: float, n: int, alpha: float) -> tuple[float, float] | None:
    if value == 0.0:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2)
    half = z * math.sqrt(1.0 / (9.0 * n * value**2) + 1.0 / (2.0 * (n - 1)))
    return value * (1 - half), value * (1 + half)


def intervals(cap: Capability, confidence: float = 0.95) -> dict[str, list[float]]:
    """[low, high] of every defined index at `confidence`; an undefined index has none.

    >>> from agent.core.spc.capability import capability
    >>> c = capability([9.9, 10.2, 10.1, 10.0, 10.3, 10.1] * 5, lsl=9.4, usl=10.6)
    >>> lo, hi = intervals(c)["cpk"]
    >>> lo < c.cpk < hi
    True
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    n = cap.n
    out: dict[str, list[float]] = {}
    for name in CHI_SQUARE_INDICES:
        value = getattr(cap, name)
        if value is not None:
            out[name] = list(_chi_square_interval(value, n - 1, alpha))
    for name in BISSELL_INDICES:
        value = getattr(cap, name)
        interval = None if value is None else _bissell_interval(value, n, alpha)
        if interval is not None:
            out[name] = list(interval)
    if cap.cpm is not None and cap.target is not None and cap.sigma_within > 0:
        delta2 = ((cap.mean - cap.target) / cap.sigma_within) ** 2
        dof = n * (1 + delta2) / (1 + 2 * delta2)
        out["cpm"] = list(_chi_square_interval(cap.cpm, dof, alpha))
    return out
