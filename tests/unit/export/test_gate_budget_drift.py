"""The pure parts of the export's data-driven defaults: the int8 gate's verdict, the
false-alarm budget's threshold, the drift finder."""

from __future__ import annotations

import numpy as np
import pytest

from export.budget import budget_threshold, exceed_share
from export.drift import MIN_TREND_SHARE, find_drift, trend_share
from export.parity import compare, parity_warning, probe_windows


def test_gate_refuses_a_model_with_flipped_decisions() -> None:
    rng = np.random.default_rng(0)
    fp32 = rng.uniform(0.0, 2.0, 400).astype(np.float32)
    int8 = fp32.copy()
    near = np.flatnonzero(np.abs(fp32 - 1.0) < 0.05)[:8]
    int8[near] = np.where(fp32[near] > 1.0, 0.9, 1.1)  # 8 of 400 decisions flip: 2 %
    parity = compare(fp32, int8, threshold=1.0)
    assert parity.decision_flips == len(near) >= 5
    assert not parity.passed
    assert "decisions flipped" in parity.refused_because
    assert "fp32 model only" in parity_warning(parity)
    assert "int8 exported anyway" in parity_warning(parity, allow_loss=True)


def test_gate_passes_a_model_with_none_flipped_even_at_low_correlation() -> None:
    # the case of the issue: scores far below the threshold that correlate at 0.98, no flip
    rng = np.random.default_rng(1)
    fp32 = rng.uniform(0.0, 0.3, 300).astype(np.float32)
    int8 = (fp32 + rng.normal(0.0, 0.02, 300)).astype(np.float32)
    parity = compare(fp32, int8, threshold=1.0)
    assert parity.pearson < 0.99
    assert parity.decision_flips == 0 and parity.passed
    assert parity_warning(parity) == ""


def test_gate_refuses_scores_that_diverge_near_the_threshold() -> None:
    fp32 = np.array([0.2, 0.7, 0.8, 1.3, 3.0], dtype=np.float32)
    int8 = np.array([0.2, 0.95, 0.8, 1.3, 3.0], dtype=np.float32)  # 0.25 x T off, no flip
    parity = compare(fp32, int8, threshold=1.0, max_flip_fraction=1.0)
    assert parity.decision_flips == 0
    assert parity.near_threshold_max_diff == pytest.approx(0.25, abs=1e-6)
    assert parity.near_threshold_p95_diff > 0.1
    assert not parity.passed and "near the threshold" in parity.refused_because
    # far from it the same error is no reason: 3.0 is well above, whatever int8 says
    far = compare(fp32, np.array([0.2, 0.7, 0.8, 1.3, 3.4], dtype=np.float32), 1.0)
    assert far.passed


def test_probes_step_each_channel_in_the_window_second_half() -> None:
    held = np.zeros((10, 8, 3), dtype=np.float32)
    probes = probe_windows(held)
    assert probes.shape[1:] == (8, 3) and probes.shape[0] == 10 * 3 * 4 * 2
    assert np.all(probes[:, :4, :] == 0.0)  # first half untouched
    assert np.count_nonzero(probes[:, 4:, :].any(axis=1).sum(axis=1) == 1) == probes.shape[0]


def test_budget_threshold_meets_the_rate_on_exponential_scores() -> None:
    rng = np.random.default_rng(2)
    held_out = rng.exponential(size=400)
    found = budget_threshold(held_out, budget_per_hour=1.0, row_seconds=1.0)
    assert found.exceed_share == pytest.approx(1 / 3600)
    # the true 1 - 1/3600 quantile of Exp(1) is ln(3600) = 8.19; a fit on 40 excesses is close
    assert 6.5 < found.threshold < 10.0
    fresh = rng.exponential(size=2_000_000)
    assert np.mean(fresh > found.threshold) < 5 / 3600
    # a stricter budget gives a higher threshold; never below the largest held-out score
    stricter = budget_threshold(held_out, budget_per_hour=1 / 8, row_seconds=1.0)
    assert stricter.threshold > found.threshold >= held_out.max()
    assert exceed_share(1 / 8, 10.0) == pytest.approx(10 / 8 / 3600)


def test_budget_threshold_refuses_no_scores() -> None:
    from export.errors import ExportError

    with pytest.raises(ExportError, match="no held-out normal scores"):
        budget_threshold(np.array([np.nan]), 1.0, 1.0)


def test_trend_share_finds_a_ramp_and_not_a_cycle_or_noise() -> None:
    n = 600
    t = np.arange(n)
    rng = np.random.default_rng(3)
    rows = np.column_stack(
        [
            0.02 * t + rng.normal(0.0, 1.0, n),  # ramp: travel 12 sd
            np.sin(2 * np.pi * t / 100) + rng.normal(0.0, 0.2, n),  # six cycles
            rng.normal(0.0, 1.0, n),  # noise
            np.full(n, 7.0),  # constant: no variance to explain
        ]
    )
    share = trend_share(rows)
    assert share[0] > 0.9 and share[1] < 0.05 and share[2] < 0.05 and share[3] == 0.0
    drift = find_drift([rows], ["ramp", "cycle", "noise", "flat"])
    assert drift.drifting == ["ramp"]
    assert drift.record()["trend_share"]["ramp"] >= MIN_TREND_SHARE
    # a channel that drifts in one input of two drifts
    other = rows.copy()
    other[:, 0] = rng.normal(0.0, 1.0, n)
    assert find_drift([other, rows], drift.columns).drifting == ["ramp"]


def test_doctests_of_the_gate_budget_and_drift_modules() -> None:
    import doctest

    import export.budget
    import export.drift
    import export.parity

    for module in (export.budget, export.drift, export.parity):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
