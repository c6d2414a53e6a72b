"""SPC constants: the exact ones against independent values, the printed table against them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.core.spc.constants import (
    N_MAX,
    N_MIN,
    exact_c4,
    exact_d2,
    exact_d3,
    subgroup_constants,
)

# d2 and d3 as precomputed (10 significant digits, adaptive quadrature to 1e-14) in MathWorks'
# statccconst.m, an independent integration of the same distribution.
INDEPENDENT_D2_D3 = {
    2: (1.128379167, 0.8525024664),
    3: (1.692568751, 0.888368004),
    5: (2.325928947, 0.8640819411),
    8: (2.847200612, 0.8198314898),
    10: (3.077505462, 0.7970506735),
    15: (3.47182689, 0.7562114297),
    20: (3.73495012, 0.7286863457),
    25: (3.93062922, 0.7084407659),
}

# Where Montgomery's printed table is not the exact value rounded to its digits: the book
# derives D3/D4 from rounded d2/d3, so these are off by one in the last printed digit.
PRINTED_DIFFERENTLY = {(3, "D4"), (19, "D3"), (19, "D4"), (22, "D3"), (22, "D4")}


def test_closed_forms_for_two_and_three() -> None:
    # the range of two normals is sqrt(2)|Z|; the mean range of three is 3/sqrt(pi)
    assert exact_d2(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-10)
    assert exact_d3(2) == pytest.approx(math.sqrt(2 - 4 / math.pi), rel=1e-10)
    assert exact_d2(3) == pytest.approx(3 / math.sqrt(math.pi), rel=1e-10)
    assert exact_c4(2) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-14)


@pytest.mark.parametrize("n", sorted(INDEPENDENT_D2_D3))
def test_exact_d2_d3_match_an_independent_integration(n: int) -> None:
    d2, d3 = INDEPENDENT_D2_D3[n]
    assert exact_d2(n) == pytest.approx(d2, abs=2e-9)
    assert exact_d3(n) == pytest.approx(d3, abs=2e-9)


@pytest.mark.parametrize("n", [2, 4, 7, 12, 25])
def test_exact_constants_match_monte_carlo(n: int) -> None:
    samples = np.random.default_rng(n).standard_normal((200_000, n))
    ranges = np.ptp(samples, axis=1)
    stdevs = np.std(samples, axis=1, ddof=1)
    # within 5 standard errors of the simulated means
    se = 5 / math.sqrt(samples.shape[0])
    assert np.mean(ranges) == pytest.approx(exact_d2(n), abs=se * np.std(ranges))
    assert np.std(ranges) == pytest.approx(exact_d3(n), abs=0.01)
    assert np.mean(stdevs) == pytest.approx(exact_c4(n), abs=se * np.std(stdevs))


def test_exact_limit_factors_follow_from_d2_d3_c4() -> None:
    k = subgroup_constants(10, "exact")
    assert math.isclose(k.A2, 3 / (k.d2 * math.sqrt(10)), rel_tol=1e-12)
    assert math.isclose(k.A3, 3 / (k.c4 * math.sqrt(10)), rel_tol=1e-12)
    assert math.isclose(k.D3 + k.D4, 2.0, rel_tol=1e-12)
    assert math.isclose(k.B3 + k.B4, 2.0, rel_tol=1e-12)
    small = subgroup_constants(4, "exact")
    assert small.D3 == 0.0 and small.B3 == 0.0  # clipped, never negative


@pytest.mark.parametrize("n", range(N_MIN, N_MAX + 1))
def test_printed_table_is_the_exact_values_rounded(n: int) -> None:
    table, exact = subgroup_constants(n, "table"), subgroup_constants(n, "exact")
    for name in ("d2", "d3", "A2", "A3", "B3", "B4", "D3", "D4", "c4"):
        digits = 4 if name == "c4" else 3
        printed, computed = getattr(table, name), getattr(exact, name)
        if (n, name) in PRINTED_DIFFERENTLY:
            assert abs(printed - computed) < 1.5 * 10**-digits, (n, name)
            assert printed != round(computed, digits), (n, name)
        else:
            assert printed == round(computed, digits), (n, name, printed, computed)


def test_textbook_values_are_the_printed_ones() -> None:
    k = subgroup_constants(5)  # the default is the printed table
    assert (k.kind, k.d2, k.A2, k.D3, k.D4, k.c4, k.A3, k.B4) == (
        "table",
        2.326,
        0.577,
        0.0,
        2.114,
        0.94,
        1.427,
        2.089,
    )
    assert subgroup_constants(2).D4 == 3.267


@pytest.mark.parametrize("n", [0, 1, 26, 2.5, True])
def test_subgroup_size_outside_2_to_25_is_refused(n: object) -> None:
    with pytest.raises(ValueError, match=r"2\.\.25"):
        subgroup_constants(n)  # type: ignore[arg-type]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="table"):
        subgroup_constants(5, "rounded")
