"""Process capability (Cp, Cpk, Cpm) and performance (Pp, Ppk) against spec limits.

The C indices use the within (short-term) sigma, the P indices the overall sigma:

=====  ================================================  =========================
Cp     (USL − LSL) / 6σw                                 two-sided specs only
CPL    (x̄ − LSL) / 3σw;  CPU = (USL − x̄) / 3σw
Cpk    min(CPL, CPU), or the one that exists             one-sided specs too
Cpm    (USL − LSL) / 6·√(σw² + (x̄ − T)²)                 two-sided, with a target
Pp     (USL − LSL) / 6σo                                 two-sided specs only
Ppk    min(PPL, PPU), with σo in place of σw             one-sided specs too
=====  ================================================  =========================

σw is MR̄/d2 (d2 = 1.128, moving ranges of two consecutive readings) when the data are
individuals, or the sigma the chart estimated in Phase I (R̄/d2, S̄/c4) when it is given.
σo is the sample standard deviation of all the data (ddof = 1). Cpm is Taguchi's index as
the R package qcc computes it (Cp / √(1 + ((x̄ − T)/σw)²)); Minitab puts its Cpm among the
overall indices instead, so the two differ by the ratio of the sigmas.

An index that is not defined is None, never a made-up number: Cp, Pp and Cpm with a one-sided
spec; Cpm without a target; every index over a sigma of 0 (constant data). `notes` says why.
NaN readings are gaps: they are left out, and a moving range is taken only between two
consecutive readings that are both present.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.core.spc.imr import D2_N2

SIGMA_USED = {
    "cp": "within", "cpl": "within", "cpu": "within", "cpk": "within", "cpm": "within",
    "pp": "overall", "ppl": "overall", "ppu": "overall", "ppk": "overall",
}  # fmt: skip


def spec_problem(
    lsl: float | None, usl: float | None, target: float | None
) -> tuple[str, str] | None:
    """(field, what is wrong) with a set of spec limits, or None when they are usable."""
    named = {"lsl": lsl, "usl": usl, "target": target}
    for name, value in named.items():
        if value is not None and not math.isfinite(value):
            return name, f"{name} must be a finite number, got {value!r}"
    if lsl is None and usl is None:
        return "lsl", "needs at least one spec limit (lsl or usl)"
    if lsl is not None and usl is not None and not lsl < usl:
        return "usl", f"lsl ({lsl}) must be below usl ({usl})"
    if target is not None and (
        (lsl is not None and target < lsl) or (usl is not None and target > usl)
    ):
        return "target", f"target ({target}) must lie within the spec limits [{lsl}, {usl}]"
    return None


@dataclass(frozen=True)
class Capability:
    """Capability and performance indices of one tag, with the sigmas behind them."""

    n: int
    mean: float
    lsl: float | None
    usl: float | None
    target: float | None
    sigma_within: float
    sigma_within_source: str  # "moving-range (MR-bar/1.128)" or "given"
    sigma_overall: float
    cp: float | None
    cpl: float | None
    cpu: float | None
    cpk: float | None
    cpm: float | None
    pp: float | None
    ppl: float | None
    ppu: float | None
    ppk: float | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: every index, both sigmas, and which sigma each index uses."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        out["sigma_overall_source"] = "sample standard deviation (ddof=1)"
        out["sigma_used"] = dict(SIGMA_USED)
        return out


def _moving_range_sigma(x: npt.NDArray[np.float64]) -> float:
    """MR-bar / d2 over pairs of consecutive readings that are both present."""
    mr = np.abs(np.diff(x))
    mr = mr[np.isfinite(mr)]
    if mr.size == 0:
        raise ValueError("capability needs two consecutive readings to estimate sigma within")
    return float(np.mean(mr)) / D2_N2


def _ratio(numerator: float, spread: float, k: float) -> float | None:
    """numerator / (k * spread), or None when that is not a finite number."""
    if spread <= 0:
        return None
    value = numerator / (k * spread)
    return value if math.isfinite(value) else None


def _worst(*indices: float | None) -> float | None:
    present = [i for i in indices if i is not None]
    return min(present) if present else None


def capability(
    data: npt.ArrayLike,
    lsl: float | None,
    usl: float | None,
    target: float | None = None,
    sigma_within: float | None = None,
) -> Capability:
    """Cp, Cpk, Cpm, Pp, Ppk of one tag's readings against its spec limits.

    Examples
    --------
    >>> c = capability([9.9, 10.2, 10.1, 10.0, 10.3, 10.1], lsl=9.4, usl=10.6, target=10.0)
    >>> [round(i, 3) for i in (c.cp, c.cpk, c.cpm, c.pp, c.ppk)]
    [1.128, 0.94, 0.983, 1.414, 1.179]
    >>> c.sigma_within_source
    'moving-range (MR-bar/1.128)'
    >>> capability([9.8, 10.1, 10.0], lsl=None, usl=10.6).cp is None
    True
    """
    problem = spec_problem(lsl, usl, target)
    if problem is not None:
        raise ValueError(problem[1])
    x = np.asarray(data, dtype=np.float64).ravel()
    if np.isinf(x).any():
        raise ValueError("capability data must be finite numbers (NaN marks a gap)")
    present = x[~np.isnan(x)]
    if present.size < 2:
        raise ValueError(f"capability needs at least 2 readings, got {present.size}")
    if sigma_within is None:
        within = _moving_range_sigma(x)
        source = f"moving-range (MR-bar/{D2_N2})"
    else:
        if not (math.isfinite(sigma_within) and sigma_within >= 0):
            raise ValueError(f"sigma_within must be a finite number >= 0, got {sigma_within!r}")
        within, source = float(sigma_within), "given"
    mean = float(np.mean(present))
    overall = float(np.std(present, ddof=1))
    notes: list[str] = []
    two_sided = lsl is not None and usl is not None
    if not two_sided:
        notes.append("one-sided spec: Cp, Pp and Cpm are undefined")
    if target is None and two_sided:
        notes.append("no target: Cpm is undefined")
    for name, sigma in (("within", within), ("overall", overall)):
        if sigma <= 0:
            notes.append(f"sigma {name} is 0 (the data do not vary): its indices are undefined")
    width = (usl - lsl) if lsl is not None and usl is not None else None
    cpl = _ratio(mean - lsl, within, 3) if lsl is not None else None
    cpu = _ratio(usl - mean, within, 3) if usl is not None else None
    ppl = _ratio(mean - lsl, overall, 3) if lsl is not None else None
    ppu = _ratio(usl - mean, overall, 3) if usl is not None else None
    cpm = None
    if width is not None and target is not None and within > 0:
        cpm = _ratio(width, math.hypot(within, mean - target), 6)
    return Capability(
        n=int(present.size),
        mean=mean,
        lsl=lsl,
        usl=usl,
        target=target,
        sigma_within=within,
        sigma_within_source=source,
        sigma_overall=overall,
        cp=None if width is None else _ratio(width, within, 6),
        cpl=cpl,
        cpu=cpu,
        cpk=_worst(cpl, cpu),
        cpm=cpm,
        pp=None if width is None else _ratio(width, overall, 6),
        ppl=ppl,
        ppu=ppu,
        ppk=_worst(ppl, ppu),
        notes=tuple(notes),
    )
