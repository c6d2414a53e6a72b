"""Capability indices against a published worked example and independent arithmetic.

The worked example is the piston-ring inside diameters of Montgomery's *Introduction to
Statistical Quality Control* (the first 25 subgroups of five, Table 6.3, shipped as the
`pistonrings` data of the R package qcc). qcc's `process.capability` on them (centre
74.00118, sigma within = R-bar/d2 = 0.009785039 with d2 = 2.326) gives, for specs
73.95..74.05, Cp 1.703, Cp_l 1.743, Cp_u 1.663, Cp_k 1.663, Cpm 1.691; with target 74.02,
Cpm 0.7856; for specs 73.99..74.01, Cp 0.3407, Cpk 0.3006, Cpm 0.3382; for 73.99..74.10,
Cp 1.8736, Cpk 0.3807, Cpm 0.4083 (the figures the Python port of qcc in Kenett, Zacks and
Gedeck's `mistat` package checks itself against). They are matched here to every digit given.
"""

from __future__ import annotations

import doctest
import itertools
import json
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.spc import capability as capability_module
from agent.core.spc.capability import capability, spec_problem

PISTON_RINGS = """
74.030 74.002 74.019 73.992 74.008  73.995 73.992 74.001 74.011 74.004
73.988 74.024 74.021 74.005 74.002  74.002 73.996 73.993 74.015 74.009
73.992 74.007 74.015 73.989 74.014  74.009 73.994 73.997 73.985 73.993
73.995 74.006 73.994 74.000 74.005  73.985 74.003 73.993 74.015 73.988
74.008 73.995 74.009 74.005 74.004  73.998 74.000 73.990 74.007 73.995
73.994 73.998 73.994 73.995 73.990  74.004 74.000 74.007 74.000 73.996
73.983 74.002 73.998 73.997 74.012  74.006 73.967 73.994 74.000 73.984
74.012 74.014 73.998 73.999 74.007  74.000 73.984 74.005 73.998 73.996
73.994 74.012 73.986 74.005 74.007  74.006 74.010 74.018 74.003 74.000
73.984 74.002 74.003 74.005 73.997  74.000 74.010 74.013 74.020 74.003
73.988 74.001 74.009 74.005 73.996  74.004 73.999 73.990 74.006 74.009
74.010 73.989 73.990 74.009 74.014  74.015 74.008 73.993 74.000 74.010
73.982 73.984 73.995 74.017 74.013
"""


def rings() -> tuple[list[float], float]:
    """The 125 diameters and sigma within = R-bar / d2 from the 25 subgroups of five."""
    values = [float(v) for v in PISTON_RINGS.split()]
    groups = [values[i : i + 5] for i in range(0, 125, 5)]
    r_bar = sum(max(g) - min(g) for g in groups) / len(groups)
    return values, r_bar / 2.326


def sig(value: float | None, digits: int) -> float:
    """Round to `digits` significant digits, as R prints."""
    assert value is not None
    return float(f"{value:.{digits}g}")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(capability_module)
    assert result.attempted >= 3
    assert result.failed == 0


@pytest.mark.parametrize(
    ("lsl", "usl", "target", "printed"),
    [
        (73.95, 74.05, 74.0, {"cp": 1.703, "cpl": 1.743, "cpu": 1.663, "cpk": 1.663, "cpm": 1.691}),
        (73.95, 74.05, 74.02, {"cp": 1.703, "cpk": 1.663, "cpm": 0.7856}),
        (73.99, 74.01, 74.0, {"cp": 0.3407, "cpl": 0.3807, "cpu": 0.3006, "cpm": 0.3382}),
        (73.99, 74.10, 74.045, {"cp": 1.8736, "cpl": 0.3807, "cpu": 3.3665, "cpm": 0.4083}),
    ],
)
def test_piston_rings_match_the_published_figures(
    lsl: float, usl: float, target: float, printed: dict[str, float]
) -> None:
    values, sigma = rings()
    c = capability(values, lsl, usl, target=target, sigma_within=sigma)
    assert c.n == 125
    assert round(c.mean, 5) == 74.00118
    assert sig(c.sigma_within, 7) == 0.009785039
    for name, figure in printed.items():
        digits = len(str(figure).replace(".", "").lstrip("0"))
        assert sig(getattr(c, name), digits) == figure, name


def test_overall_indices_use_the_sample_standard_deviation() -> None:
    values, sigma = rings()
    c = capability(values, 73.95, 74.05, sigma_within=sigma)
    s = statistics.stdev(values)
    mean = statistics.fmean(values)
    assert c.sigma_overall == pytest.approx(s, rel=1e-12)
    assert c.pp == pytest.approx(0.1 / (6 * s), rel=1e-12)
    assert c.ppk == pytest.approx(min(74.05 - mean, mean - 73.95) / (3 * s), rel=1e-12)
    assert c.sigma_within_source == "given"


def test_individuals_use_moving_range_over_d2() -> None:
    values = [10.2, 9.7, 10.4, 10.1, 9.6, 10.0, 10.3, 9.9]
    mr_bar = sum(abs(b - a) for a, b in itertools.pairwise(values)) / 7
    within = mr_bar / 1.128
    c = capability(values, lsl=9.0, usl=11.5, target=10.0)
    mean = statistics.fmean(values)
    assert c.sigma_within == pytest.approx(within, rel=1e-12)
    assert c.sigma_within_source.startswith("moving-range")
    assert c.cp == pytest.approx(2.5 / (6 * within), rel=1e-12)
    assert c.cpk == pytest.approx((mean - 9.0) / (3 * within), rel=1e-12)
    assert c.cpm == pytest.approx(2.5 / (6 * math.sqrt(within**2 + (mean - 10) ** 2)), rel=1e-12)


def test_gaps_are_left_out_and_moving_ranges_do_not_span_them() -> None:
    c = capability([1.0, 2.0, math.nan, 5.0, 6.0], lsl=0.0, usl=10.0)
    assert c.n == 4
    assert c.sigma_within == pytest.approx(1.0 / 1.128)
    assert c.mean == pytest.approx(3.5)


@pytest.mark.parametrize(("lsl", "usl"), [(None, 74.05), (73.95, None)])
def test_one_sided_specs_give_cpk_and_ppk_only(lsl: float | None, usl: float | None) -> None:
    values, sigma = rings()
    c = capability(values, lsl, usl, target=74.0, sigma_within=sigma)
    assert c.cp is None and c.pp is None and c.cpm is None
    one_sided = c.cpu if usl is not None else c.cpl
    assert c.cpk is not None and c.cpk == one_sided
    assert c.ppk == (c.ppu if usl is not None else c.ppl)
    assert any("one-sided" in note for note in c.notes)


def test_cpm_needs_a_target() -> None:
    c = capability([1.0, 2.0, 1.5, 1.7], lsl=0.0, usl=3.0)
    assert c.cpm is None
    assert "no target: Cpm is undefined" in c.notes


def test_constant_data_give_undefined_indices_not_infinity() -> None:
    c = capability([5.0] * 10, lsl=4.0, usl=6.0, target=5.0)
    assert c.sigma_within == 0 and c.sigma_overall == 0
    assert all(
        getattr(c, k) is None for k in ("cp", "cpk", "cpm", "pp", "ppk", "cpl", "cpu", "ppl")
    )
    assert sum("do not vary" in note for note in c.notes) == 2


def test_to_dict_is_json_and_states_each_sigma() -> None:
    values, sigma = rings()
    d = capability(values, 73.95, 74.05, target=74.0, sigma_within=sigma).to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["sigma_used"]["cp"] == "within" and d["sigma_used"]["ppk"] == "overall"
    assert d["sigma_used"]["cpm"] == "within"
    assert d["sigma_within_source"] == "given"
    assert "ddof=1" in d["sigma_overall_source"]
    assert d["cpk"] == pytest.approx(1.6632, abs=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lsl": None, "usl": None}, "at least one spec limit"),
        ({"lsl": 5.0, "usl": 5.0}, "lsl (5.0) must be below usl (5.0)"),
        ({"lsl": 6.0, "usl": 5.0}, "must be below"),
        ({"lsl": 0.0, "usl": 5.0, "target": 6.0}, "target (6.0) must lie within"),
        ({"lsl": 0.0, "usl": None, "target": -1.0}, "target"),
        ({"lsl": math.inf, "usl": None}, "lsl must be a finite number"),
        ({"lsl": 0.0, "usl": math.nan}, "usl must be a finite number"),
        ({"lsl": 0.0, "usl": 5.0, "target": math.nan}, "target must be a finite number"),
        ({"lsl": 0.0, "usl": 5.0, "sigma_within": -1.0}, "sigma_within"),
        ({"lsl": 0.0, "usl": 5.0, "sigma_within": math.inf}, "sigma_within"),
    ],
)
def test_bad_spec_or_sigma_is_refused(kwargs: dict[str, float | None], message: str) -> None:
    with pytest.raises(ValueError) as info:
        capability([1.0, 2.0, 3.0], **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1.0], "at least 2 readings"),
        ([1.0, math.nan, math.nan], "at least 2 readings"),
        ([1.0, math.nan, 2.0], "two consecutive readings"),
        ([1.0, math.inf, 2.0], "finite"),
    ],
)
def test_too_little_or_bad_data_is_refused(data: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        capability(data, lsl=0.0, usl=5.0)


def test_spec_problem_accepts_good_specs() -> None:
    assert spec_problem(1.0, 2.0, 1.5) is None
    assert spec_problem(None, 2.0, None) is None
    assert spec_problem(1.0, None, 1.0) is None


FINITE = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(FINITE, min_size=3, max_size=40).filter(lambda v: statistics.pstdev(v) > 1e-3),
    st.floats(-1e4, 1e4),
    st.floats(0.01, 100),
)
def test_indices_are_invariant_to_shift_and_scale(
    values: list[float], shift: float, scale: float
) -> None:
    lo, hi = min(values) - 1.0, max(values) + 1.0
    mid = (lo + hi) / 2
    base = capability(values, lo, hi, target=mid)
    moved = capability(
        [v * scale + shift for v in values],
        lo * scale + shift,
        hi * scale + shift,
        target=mid * scale + shift,
    )
    for name in ("cp", "cpk", "cpm", "pp", "ppk"):
        assert getattr(moved, name) == pytest.approx(getattr(base, name), rel=1e-6), name
