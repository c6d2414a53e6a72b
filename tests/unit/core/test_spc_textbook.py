"""SPC charts against published numbers, matched to every printed digit.

Sources (the data are in tests/fixtures/spc/, see its README):
- Montgomery, *Introduction to Statistical Quality Control*: piston-ring inside diameters,
  25 trial subgroups of 5: x-double-bar = 74.001, R-bar = 0.023, X-bar limits 73.988 / 74.014.
- R package qcc, as printed by the comparison tests of the `mistat` package (Kenett, Zacks,
  Gedeck) for the same data, the orange-juice cans p chart, the viscosity (Montgomery p. 242)
  and antifreeze (Wetherill and Brown p. 120) individuals charts.
- mistat's `ewmaSmooth` tests (EWMA recursion) and a printed qcc `ewma` summary.
- Montgomery's Example 9.1 (tabular CUSUM on Table 9.1): signal period, C+, N+, new mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.core.spc import (
    AttributeChart,
    EwmaChart,
    ImrChart,
    XbarChart,
    fit_attribute,
    fit_imr,
    fit_xbar,
    run_series,
)
from agent.core.tabular import read_csv

FIXTURES = Path(__file__).parents[2] / "fixtures" / "spc"


def printed(value: float, text: str) -> bool:
    """True when `value` rounds to the printed `text` (as many decimals as it shows)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(value - float(text)) <= 0.5 * 10**-decimals + 1e-12


def pistonrings() -> np.ndarray:
    values = read_csv(FIXTURES / "pistonrings.csv", ["diameter"]).column("diameter")
    return values.reshape(40, 5, 1)


def test_piston_rings_xbar_r_as_montgomery_prints_it() -> None:
    limits = fit_xbar(pistonrings()[:25], "range")  # printed constants, 3 sigma
    lcl, ucl = limits.xbar_limits
    assert printed(limits.center[0], "74.001")
    assert printed(limits.spread_center[0], "0.023")
    assert printed(lcl[0], "73.988") and printed(ucl[0], "74.014")
    # the R chart: D3 = 0 and D4 = 2.114 for n = 5
    r_lcl, r_ucl = limits.spread_limits
    assert r_lcl[0] == 0.0 and r_ucl[0] == pytest.approx(2.114 * limits.spread_center[0])


def test_piston_rings_xbar_r_as_qcc_prints_it() -> None:
    limits = fit_xbar(pistonrings()[:25], "range")
    assert printed(limits.center[0], "74.00118")
    assert printed(limits.sigma[0], "0.009785039")  # R-bar / 2.326
    lcl, ucl = limits.xbar_limits
    # qcc uses 3 sigma / sqrt(n), the book A2 = 0.577 (itself rounded): 4e-6 apart
    assert abs(lcl[0] - 73.98805) < 1e-5 and abs(ucl[0] - 74.0143) < 1e-5
    two = fit_xbar(pistonrings()[:25], "range", nsigmas=2.0)
    lcl2, ucl2 = two.xbar_limits
    assert printed(lcl2[0], "73.99242") and printed(ucl2[0], "74.00993")
    points = two.points(*[np.mean(pistonrings()[:25], axis=1), np.ptp(pistonrings()[:25], axis=1)])
    beyond = points.xbar.beyond[:, 0]
    assert np.flatnonzero(beyond).tolist() == [0, 13]  # qcc: UCL [0], LCL [13]


def test_piston_rings_xbar_s_as_qcc_prints_it() -> None:
    limits = fit_xbar(pistonrings()[:25], "stdev", constants="exact")  # qcc computes c4
    assert printed(limits.center[0], "74.00118")
    assert printed(limits.spread_center[0], "0.009240037")
    assert printed(limits.sigma[0], "0.009829977")
    s_lcl, s_ucl = limits.spread_limits
    # printed 0.019302416 there; we get 0.0193024168, the same to eight significant digits
    # (the ninth printed digit looks truncated, not rounded)
    assert s_lcl[0] == 0.0 and printed(s_ucl[0], "0.01930242")
    assert abs(s_ucl[0] - 0.019302416) < 1e-9


def test_piston_rings_streaming_chart_equals_phase1_statistics() -> None:
    data = pistonrings()
    limits = fit_xbar(data[:25], "range")
    xbar, ranges = run_series(XbarChart(limits).update, data.reshape(200, 1))
    np.testing.assert_allclose(xbar.statistic[:, 0], data.mean(axis=1)[:, 0], atol=1e-12)
    np.testing.assert_allclose(ranges.statistic[:, 0], np.ptp(data, axis=1)[:, 0], atol=1e-12)


def test_orange_juice_p_chart_and_phase1_rounds_as_qcc_prints_them() -> None:
    table = read_csv(FIXTURES / "orangejuice.csv")
    counts, sizes = table.column("D"), table.column("size")
    limits = fit_attribute("p", counts, sizes)
    point = AttributeChart(limits).update(counts, sizes)  # the 30 samples as 30 channels
    assert printed(limits.center[0], "0.2313333")
    assert printed(point.lcl[0], "0.05242755") and printed(point.ucl[0], "0.4102391")
    assert np.flatnonzero(point.beyond).tolist() == [14, 22]
    # qcc's help: drop samples 15 and 23 (1-based) and re-estimate
    once = fit_attribute("p", counts, sizes, rounds=1)
    assert once.report is not None and once.report.dropped == ((14, 22),)
    again = once.point(counts[:, None], sizes[:, None])
    assert printed(once.center[0], "0.215")
    assert printed(again.lcl[0, 0], "0.04070284") and printed(again.ucl[0, 0], "0.3892972")
    # qcc then finds sample 20 (0-based in the full series) above the new UCL
    assert np.flatnonzero(again.beyond[:, 0]).tolist() == [14, 20, 22]


@pytest.mark.parametrize(
    ("data", "center", "sigma", "lcl", "ucl"),
    [
        (  # viscosity, Montgomery p. 242
            [33.75, 33.05, 34, 33.81, 33.46, 34.02, 33.68, 33.27, 33.49, 33.20, 33.62, 33.00,
             33.54, 33.12, 33.84],
            "33.52333", "0.4261651", "32.24484", "34.80183",
        ),
        (  # water content of antifreeze, Wetherill and Brown p. 120
            [2.23, 2.53, 2.62, 2.63, 2.58, 2.44, 2.49, 2.34, 2.95, 2.54, 2.60, 2.45, 2.17,
             2.58, 2.57, 2.44, 2.38, 2.23, 2.23, 2.54, 2.66, 2.84, 2.81, 2.39, 2.56, 2.70,
             3.00, 2.81, 2.77, 2.89, 2.54, 2.98, 2.35, 2.53],
            "2.569706", "0.1794541", "2.031344", "3.108068",
        ),
    ],
)  # fmt: skip
def test_individuals_chart_as_qcc_prints_it(
    data: list[float], center: str, sigma: str, lcl: str, ucl: str
) -> None:
    limits = fit_imr(np.array(data)[:, None])
    assert printed(limits.center[0], center) and printed(limits.sigma[0], sigma)
    assert printed(limits.lcl[0], lcl) and printed(limits.ucl[0], ucl)
    individuals, _ = run_series(ImrChart(limits).update, np.array(data))
    assert not individuals.beyond.any()  # qcc: no point beyond the limits


@pytest.mark.parametrize(
    ("lam", "start", "expected"),
    [
        (0.2, 1.0, [1.000, 1.200, 1.560, 2.048]),
        (0.8, 1.0, [1, 1.8, 2.76, 3.752]),
        (0.2, 10.0, [8.2, 6.96, 6.168, 5.7344]),
    ],
)
def test_ewma_recursion_as_mistat_prints_it(
    lam: float, start: float, expected: list[float]
) -> None:
    chart = EwmaChart(center=start, sigma=1.0, lam=lam)
    (series,) = run_series(chart.update, np.array([1.0, 2.0, 3.0, 4.0]))
    for value, text in zip(series.statistic[:, 0], map(str, expected), strict=True):
        assert printed(value, text)


def test_ewma_first_limits_as_qcc_prints_them() -> None:
    # qcc ewma(lambda = 0.1, nsigmas = 3, std.dev = 0.8): centre 99.13187, first limits
    point = EwmaChart(center=99.13187, sigma=0.8, lam=0.1).update(np.array([500.0]))
    assert printed(point.lcl[0], "98.89187") and printed(point.ucl[0], "99.37187")


def test_cusum_example_as_montgomery_concludes_it() -> None:
    """Montgomery's Example 9.1 (Table 9.2): mu0 = 10, sigma = 1, k = 0.5, h = 5.

    The book's conclusions: the upper CUSUM first exceeds H at period 29 with C+ = 5.28 and
    N+ = 7, so the shift began after period 22 and the new mean is estimated as
    mu0 + K + C+/N+ = 11.25. The lower CUSUM never signals.
    """
    from agent.core.spc import CusumChart

    x = read_csv(FIXTURES / "montgomery_table_9_1.csv", ["x"]).column("x")
    chart = CusumChart(10.0, 1.0, k=0.5, h=5.0)
    points = [chart.update(x[t : t + 1]) for t in range(x.size)]
    first = next(t for t, p in enumerate(points) if p.upper.beyond[0])
    assert first + 1 == 29  # periods are numbered from 1 in the book
    c_plus, n_plus = float(points[first].upper.statistic[0]), int(points[first].n_upper[0])
    assert printed(c_plus, "5.28")
    assert n_plus == 7
    assert first + 1 - n_plus == 22
    assert printed(10.0 + 0.5 + c_plus / n_plus, "11.25")
    assert not any(bool(p.lower.beyond[0]) for p in points)
