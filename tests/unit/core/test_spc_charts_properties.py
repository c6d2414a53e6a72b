"""SPC chart properties: shift and scale, streaming = batch = the textbook formula, restarts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.core.spc import (
    AttributeChart,
    CusumChart,
    EwmaChart,
    ImrChart,
    XbarChart,
    fit_attribute,
    fit_imr,
    fit_xbar,
    run_series,
)
from agent.core.tabular import read_csv

TABLE_9_1 = read_csv(Path(__file__).parents[2] / "fixtures" / "spc" / "montgomery_table_9_1.csv")
X91 = TABLE_9_1.column("x")

values = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
# Subgroup data that is not degenerate (some spread in every channel)
shapes = st.tuples(st.integers(3, 12), st.integers(2, 8), st.integers(1, 3))
subgroups = arrays(np.float64, shapes, elements=values).filter(
    lambda a: bool(np.all(np.ptp(a, axis=(0, 1)) > 1e-3))
)


@settings(max_examples=40, deadline=None)
@given(subgroups, st.floats(-1e4, 1e4), st.sampled_from(["range", "stdev"]))
def test_xbar_limits_move_with_the_data(data: np.ndarray, shift: float, spread: str) -> None:
    a, b = fit_xbar(data, spread), fit_xbar(data + shift, spread)
    np.testing.assert_allclose(b.center, a.center + shift, atol=1e-6)
    # X-bar limits keep their place relative to the centre; R and S limits do not move at all
    for la, lb in zip(a.xbar_limits, b.xbar_limits, strict=True):
        np.testing.assert_allclose(lb - b.center, la - a.center, atol=1e-6)
    for la, lb in zip(a.spread_limits, b.spread_limits, strict=True):
        np.testing.assert_allclose(lb, la, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(subgroups, st.floats(1e-3, 1e3), st.sampled_from(["range", "stdev"]),
       st.sampled_from(["table", "exact"]), st.floats(1.0, 4.0))  # fmt: skip
def test_xbar_limits_scale_with_the_data(
    data: np.ndarray, scale: float, spread: str, constants: str, nsigmas: float
) -> None:
    a = fit_xbar(data, spread, nsigmas, constants)
    b = fit_xbar(data * scale, spread, nsigmas, constants)
    np.testing.assert_allclose(b.sigma, a.sigma * scale, rtol=1e-9)
    for fa, fb in ((a.xbar_limits, b.xbar_limits), (a.spread_limits, b.spread_limits)):
        np.testing.assert_allclose(fb[1] - fb[0], (fa[1] - fa[0]) * scale, rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(3, 40), st.integers(1, 3)), elements=values),
       st.floats(-1e4, 1e4), st.floats(1e-3, 1e3))  # fmt: skip
def test_imr_limits_shift_and_scale(data: np.ndarray, shift: float, scale: float) -> None:
    a = fit_imr(data, floor_sigma=False)
    b = fit_imr(data * scale + shift, floor_sigma=False)
    np.testing.assert_allclose(b.center, a.center * scale + shift, atol=1e-6 * (1 + abs(shift)))
    np.testing.assert_allclose(b.ucl - b.center, (a.ucl - a.center) * scale, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b.mr_ucl, a.mr_ucl * scale, rtol=1e-7, atol=1e-9)


def plain_ewma(x: list[float], mu: float, sigma: float, lam: float, L: float) -> list[tuple]:
    """Montgomery's EWMA written out with Python floats: (z, lcl, ucl) per point."""
    z, out = mu, []
    for i, xi in enumerate(x, start=1):
        z = lam * xi + (1 - lam) * z
        half = L * sigma * (lam / (2 - lam) * (1 - (1 - lam) ** (2 * i))) ** 0.5
        out.append((z, mu - half, mu + half))
    return out


def plain_cusum(x: list[float], mu: float, sigma: float, k: float, h: float) -> list[tuple]:
    """Montgomery's tabular CUSUM written out: (C+, C-, N+, N-) per point."""
    hi = lo = 0.0
    n_hi = n_lo = 0
    out = []
    for xi in x:
        hi = max(0.0, xi - (mu + k * sigma) + hi)
        lo = max(0.0, (mu - k * sigma) - xi + lo)
        n_hi = n_hi + 1 if hi > 0 else 0
        n_lo = n_lo + 1 if lo > 0 else 0
        out.append((hi, lo, n_hi, n_lo))
    return out


def test_ewma_on_table_9_1_equals_the_textbook_recursion() -> None:
    (series,) = run_series(EwmaChart(10.0, 1.0, lam=0.1, nsigmas=2.7).update, X91)
    expected = np.array(plain_ewma(X91.tolist(), 10.0, 1.0, 0.1, 2.7))
    np.testing.assert_allclose(series.statistic[:, 0], expected[:, 0], rtol=1e-13)
    np.testing.assert_allclose(series.lcl[:, 0], expected[:, 1], rtol=1e-13)
    np.testing.assert_allclose(series.ucl[:, 0], expected[:, 2], rtol=1e-13)
    assert np.flatnonzero(series.beyond[:, 0]).tolist() == [
        i for i, (z, lo, up) in enumerate(expected) if z > up or z < lo
    ]


def test_cusum_on_table_9_1_equals_the_textbook_recursion() -> None:
    chart = CusumChart(10.0, 1.0, k=0.5, h=5.0)
    points = [chart.update(X91[t : t + 1]) for t in range(X91.size)]
    expected = plain_cusum(X91.tolist(), 10.0, 1.0, 0.5, 5.0)
    for p, (hi, lo, n_hi, n_lo) in zip(points, expected, strict=True):
        assert p.upper.statistic[0] == pytest.approx(hi, abs=1e-12)
        assert p.lower.statistic[0] == pytest.approx(lo, abs=1e-12)
        assert (p.n_upper[0], p.n_lower[0]) == (n_hi, n_lo)
    signals = [i for i, p in enumerate(points) if p.upper.beyond[0] or p.lower.beyond[0]]
    assert signals == [i for i, e in enumerate(expected) if e[0] > 5 or e[1] > 5]
    assert signals  # the shift after period 20 is found


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 3)), elements=values),
       st.floats(0.05, 1.0))  # fmt: skip
def test_ewma_streaming_equals_the_closed_form(data: np.ndarray, lam: float) -> None:
    (series,) = run_series(EwmaChart(np.zeros(data.shape[1]), 1.0, lam).update, data)
    t = np.arange(1, data.shape[0] + 1)
    weights = lam * (1 - lam) ** np.maximum(t[:, None] - t[None, :], 0)  # row t: weight of x_i
    expected = np.tril(weights) @ data
    np.testing.assert_allclose(series.statistic, expected, atol=1e-6)
    asym = np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
    np.testing.assert_allclose(series.ucl[:, 0], 3 * asym, rtol=1e-12)


def charts_for(data: np.ndarray) -> list[Any]:
    """One of every streaming chart, fitted on `data` (rows, channels)."""
    c = data.shape[1]
    imr = fit_imr(data)
    return [
        ImrChart(imr, flatline_samples=3),
        XbarChart(fit_xbar(data[: (data.shape[0] // 4) * 4].reshape(-1, 4, c), "range")),
        XbarChart(fit_xbar(data[: (data.shape[0] // 4) * 4].reshape(-1, 4, c), "stdev")),
        EwmaChart(imr.center, imr.sigma, lam=0.2),
        CusumChart(imr.center, imr.sigma, k=0.5, h=4.0, headstart=0.5),
    ]


def plotted(points: list[Any]) -> list[np.ndarray]:
    return [np.stack([q.statistic for q in p.plots]) for p in points if p is not None]


@pytest.mark.parametrize("index", range(5))
def test_state_saved_mid_stream_equals_an_uninterrupted_run(index: int) -> None:
    data = np.random.default_rng(7).normal(5.0, 2.0, (61, 3))
    data[30:, 1] += 4.0  # a shift, so the CUSUM and EWMA carry real state
    whole = charts_for(data)[index]
    first, second = charts_for(data)[index], charts_for(data)[index]
    uninterrupted = plotted([whole.update(r) for r in data])
    before = [first.update(r) for r in data[:37]]  # 37: in the middle of a subgroup of 4
    second.restore(json.loads(json.dumps(first.state())))
    after = [second.update(r) for r in data[37:]]
    resumed = plotted(before + after)
    assert len(resumed) == len(uninterrupted)
    for a, b in zip(resumed, uninterrupted, strict=True):
        np.testing.assert_array_equal(a, b)


def test_restore_refuses_a_state_of_another_chart() -> None:
    data = np.random.default_rng(1).normal(size=(40, 2))
    ewma, cusum = charts_for(data)[3], charts_for(data)[4]
    with pytest.raises(ValueError, match="cusum"):
        ewma.restore(cusum.state())
    other = CusumChart(0.0, 1.0, k=1.0, channels=2)
    with pytest.raises(ValueError, match="k="):
        other.restore(cusum.state())


@pytest.mark.parametrize("index", range(5))
def test_streaming_in_chunks_equals_one_batch(index: int) -> None:
    data = np.random.default_rng(3).normal(size=(48, 2))
    batch = run_series(charts_for(data)[index].update, data)
    chart = charts_for(data)[index]
    parts = [run_series(chart.update, chunk) for chunk in np.split(data, [8, 20, 33])]
    for i, series in enumerate(batch):
        joined = np.concatenate([p[i].statistic for p in parts if p[i].statistic.size])
        np.testing.assert_array_equal(joined, series.statistic)


def test_xbar_streaming_equals_subgroup_statistics() -> None:
    data = np.random.default_rng(4).normal(size=(10, 5, 3))
    for spread, stat in (("range", np.ptp(data, axis=1)), ("stdev", np.std(data, axis=1, ddof=1))):
        xbar, companion = run_series(XbarChart(fit_xbar(data, spread)).update, data.reshape(50, 3))
        np.testing.assert_allclose(xbar.statistic, data.mean(axis=1), atol=1e-12)
        np.testing.assert_allclose(companion.statistic, stat, atol=1e-12)


def test_phase1_rounds_drop_an_out_of_control_subgroup() -> None:
    data = np.random.default_rng(5).normal(10.0, 1.0, (30, 5, 2))
    data[7, :, 1] += 8.0  # subgroup 7 of channel 1 is off
    limits = fit_xbar(data, "range", rounds=3)
    assert limits.report is not None
    assert 7 in limits.report.dropped[1] and 7 not in limits.report.dropped[0]
    assert limits.report.rounds >= 1
    clean = fit_xbar(np.delete(data, limits.report.dropped[1], axis=0)[:, :, 1:], "range")
    np.testing.assert_allclose(limits.center[1], clean.center[0])


def test_constant_data_collapses_the_limits_without_crashing() -> None:
    data = np.full((6, 4, 1), 3.0)
    limits = fit_xbar(data, "range")
    assert limits.sigma[0] == 0.0
    chart = XbarChart(limits)
    for v in (3.0, 3.0, 3.0):
        assert chart.update(np.array([v])) is None
    on = chart.update(np.array([3.0]))
    assert on is not None and not on.xbar.beyond.any() and on.xbar.z[0] == 0.0
    for v in (3.0, 3.0, 3.0, 3.5):
        off = chart.update(np.array([v]))
    assert off is not None and off.xbar.beyond[0] and off.xbar.z[0] == np.inf


def test_nan_is_a_gap_that_holds_ewma_and_cusum() -> None:
    ewma, cusum = EwmaChart(0.0, 1.0, 0.5), CusumChart(0.0, 1.0)
    for chart in (ewma, cusum):
        chart.update(np.array([2.0]))
    gap_e, gap_c = ewma.update(np.array([np.nan])), cusum.update(np.array([np.nan]))
    assert np.isnan(gap_e.statistic[0]) and not gap_e.beyond[0]
    assert np.isnan(gap_c.upper.statistic[0])
    assert ewma.update(np.array([2.0])).statistic[0] == pytest.approx(1.5)
    assert cusum.update(np.array([2.0])).upper.statistic[0] == pytest.approx(3.0)


def test_p_chart_with_varying_sizes_has_per_point_limits() -> None:
    counts = np.array([[3.0], [8.0], [1.0], [30.0]])
    sizes = np.array([[50.0], [200.0], [20.0], [100.0]])
    limits = fit_attribute("p", counts, sizes)
    p_bar = 42 / 370
    assert limits.center[0] == pytest.approx(p_bar)
    (series,) = run_series(AttributeChart(limits).update, counts, sizes)
    half = 3 * np.sqrt(p_bar * (1 - p_bar) / sizes[:, 0])
    np.testing.assert_allclose(series.ucl[:, 0], p_bar + half)
    np.testing.assert_allclose(series.lcl[:, 0], np.maximum(p_bar - half, 0.0))
    # 8/200 = 0.04 is below that point's LCL 0.046; 30/100 above its UCL 0.209
    assert series.beyond[:, 0].tolist() == [False, True, False, True]


def test_c_u_np_charts() -> None:
    c = fit_attribute("c", np.array([4.0, 6.0, 5.0, 5.0]))
    assert AttributeChart(c).update(np.array([12.0])).ucl[0] == pytest.approx(5 + 3 * 5**0.5)
    u = fit_attribute("u", np.array([4.0, 6.0]), np.array([2.0, 3.0]))
    assert u.center[0] == pytest.approx(2.0)
    point = AttributeChart(u).update(np.array([4.0]), np.array([8.0]))
    assert point.statistic[0] == 0.5 and point.ucl[0] == pytest.approx(2 + 3 * (2 / 8) ** 0.5)
    np_chart = AttributeChart(fit_attribute("np", np.array([2.0, 4.0]), np.array([50.0] * 2)), 50)
    assert np_chart.update(np.array([3.0])).center[0] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fit_xbar(np.zeros((5, 1, 1))), r"2\.\.25"),
        (lambda: fit_xbar(np.zeros((5, 26, 1))), r"2\.\.25"),
        (lambda: fit_xbar(np.zeros((1, 5, 1))), "at least 2 subgroups"),
        (lambda: fit_xbar(np.zeros((5, 5, 1)), "iqr"), "spread"),
        (lambda: fit_imr(np.zeros((1, 1))), "two rows"),
        (lambda: EwmaChart(0.0, 1.0, lam=0.0), "lambda"),
        (lambda: EwmaChart(0.0, 1.0, lam=1.5), "lambda"),
        (lambda: CusumChart(0.0, 1.0, h=0.0), "h must"),
        (lambda: CusumChart(0.0, 1.0, headstart=1.0), "headstart"),
        (lambda: fit_attribute("c", np.array([1.0, -1.0])), ">= 0"),
        (lambda: fit_attribute("p", np.array([1.0, 2.0])), "sample size"),
        (lambda: fit_attribute("p", np.array([9.0, 2.0]), np.array([5.0, 5.0])), "defectives"),
        (lambda: fit_attribute("np", np.array([1.0, 2.0]), np.array([5.0, 6.0])), "constant"),
        (lambda: fit_attribute("c", np.array([1.0])), "at least 2"),
        (lambda: fit_attribute("x", np.array([1.0, 2.0])), "one of"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("kind", ["p", "np", "c", "u"])
def test_attribute_chart_reusing_limits_equals_computing_them_per_point(kind: str) -> None:
    rng = np.random.default_rng(11)
    sizes = np.repeat([[50.0, 80.0], [50.0, 80.0], [120.0, 80.0], [50.0, 60.0]], 3, axis=0)
    if kind == "np":
        sizes = np.full_like(sizes, 50.0)
    counts = rng.binomial(sizes.astype(int), 0.1).astype(np.float64)
    limits = fit_attribute(kind, counts, None if kind == "c" else sizes)
    chart = AttributeChart(limits)
    for t in range(counts.shape[0]):
        row_sizes = None if kind == "c" else sizes[t]
        got = chart.update(counts[t], row_sizes)
        want = limits.point(counts[t], row_sizes)
        for field in ("statistic", "center", "lcl", "ucl", "sigma"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


def test_the_live_detector_saves_and_restores_its_chart() -> None:
    from agent.pipeline.detectors.spc import SpcDetector

    data = np.random.default_rng(9).normal(size=(50, 2))
    first, second = (SpcDetector(fit_imr(data), flatline_samples=2) for _ in range(2))
    for row in (data[0], data[1], data[1]):
        first.update(row)
    second.restore(json.loads(json.dumps(first.state())))
    first.update(data[1])
    second.update(data[1])
    a, b = first.last, second.last
    assert a is not None and b is not None
    assert a.flatline.tolist() == b.flatline.tolist() == [True, True]  # the run survived
    np.testing.assert_array_equal(a.moving_range.statistic, b.moving_range.statistic)
