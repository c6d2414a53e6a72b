"""Pure core: window ring, robust scaler, I-MR chart, alarm state machines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent.core.scaler import RobustScaler
from agent.core.spc import D2_N2, ImrChart, fit_imr
from agent.core.window import SlidingWindow, sliding_windows
from agent.pipeline.events.alarms import DebouncedAlarm, Edge, SustainedRuleAlarm


def test_ring_window_equals_batch_windows() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 3))
    ring = SlidingWindow(size=8, channels=3, hop=3)
    live = [w.copy() for row in data if (w := ring.push(row)) is not None]
    batch = sliding_windows(data, size=8, hop=3)
    assert len(live) == len(batch) == 15
    np.testing.assert_array_equal(np.stack(live), batch)


def test_window_reset_needs_a_full_window_again() -> None:
    ring = SlidingWindow(size=3, channels=1)
    for v in range(3):
        ring.push(np.array([float(v)]))
    ring.reset()
    assert ring.push(np.array([9.0])) is None
    assert not ring.full


def test_robust_scaler_ignores_outliers() -> None:
    data = np.concatenate([np.random.default_rng(1).normal(10, 2, (1000, 1)), [[1e6]]])
    scaler = RobustScaler.fit(data)
    assert scaler.center[0] == pytest.approx(10, abs=0.3)
    assert scaler.scale[0] == pytest.approx(2, rel=0.1)
    assert RobustScaler.from_dict(scaler.to_dict()).center[0] == scaler.center[0]


def test_constant_channel_does_not_divide_by_zero() -> None:
    scaler = RobustScaler.fit(np.ones((10, 2)))
    assert np.all(np.isfinite(scaler.transform(np.zeros((1, 2)))))


def test_imr_limits_by_hand() -> None:
    # moving ranges 2, 1, 2 -> MR-bar 5/3; sigma = MR-bar / 1.128
    limits = fit_imr(np.array([[10.0], [12.0], [11.0], [13.0]]))
    assert limits.mr_bar[0] == pytest.approx(5 / 3)
    assert limits.sigma[0] == pytest.approx(5 / 3 / D2_N2)
    assert limits.ucl[0] == pytest.approx(11.5 + 3 * 5 / 3 / D2_N2)
    assert limits.mr_ucl[0] == pytest.approx(3.267 * 5 / 3)


def test_imr_chart_flags_each_rule_on_its_channel() -> None:
    limits = fit_imr(np.random.default_rng(2).normal(0, 1, (500, 3)))
    chart = ImrChart(limits, flatline_samples=3)
    state = chart.update(np.array([0.0, 0.0, 0.0]))
    assert not state.out_of_control.any()
    state = chart.update(np.array([10.0, 0.5, 0.0]))  # channel 0 jumps out
    assert state.beyond_limits.tolist() == [True, False, False]
    assert state.mr_beyond[0]
    for _ in range(2):
        state = chart.update(np.array([0.1, 0.2, 0.0]))
    assert state.flatline.tolist() == [False, False, True]  # channel 2 unchanged 3 times


def test_nan_row_is_a_gap_not_an_alarm() -> None:
    chart = ImrChart(fit_imr(np.random.default_rng(3).normal(0, 1, (100, 1))), 2)
    chart.update(np.array([0.0]))
    state = chart.update(np.array([np.nan]))
    assert not state.out_of_control.any()
    state = chart.update(np.array([0.0]))  # same value as before the gap: not a flatline
    assert not state.flatline.any()


def test_debounce_and_hysteresis() -> None:
    alarm = DebouncedAlarm(raise_after=3, clear_after=2)
    edges = [alarm.update(bad=True, good=False) for _ in range(3)]
    assert edges == [Edge.NONE, Edge.NONE, Edge.RAISED]
    # in the hysteresis band (neither bad nor good) the alarm holds
    assert alarm.update(bad=False, good=False) is Edge.NONE
    assert alarm.active
    assert alarm.update(bad=False, good=True) is Edge.NONE
    assert alarm.update(bad=False, good=True) is Edge.CLEARED


def test_debounced_alarm_state_restores_mid_run() -> None:
    a = DebouncedAlarm(raise_after=3, clear_after=2)
    a.update(bad=True, good=False)
    a.update(bad=True, good=False)  # one more bad row raises it
    b = DebouncedAlarm(raise_after=3, clear_after=2)
    b.restore(json.loads(json.dumps(a.state())))
    steps = [(True, False), (False, True), (False, True), (True, False)]
    assert [a.update(*s) for s in steps] == [b.update(*s) for s in steps]
    assert [b.update(True, False) for _ in range(2)][-1] is Edge.RAISED


def test_sustained_rule_counts_per_channel() -> None:
    alarm = SustainedRuleAlarm(channels=3, hits=3, span=5, clear_after=2)
    # one violation per row, but on a different tag each time: a healthy line
    scattered = [[True, False, False], [False, True, False], [False, False, True]] * 3
    assert all(alarm.update(np.array(r)) is Edge.NONE for r in scattered)
    # the same tag three times in five rows: raise, and say which tag
    edges = [alarm.update(np.array(r)) for r in ([False, True, False], [False, False, False])]
    edges.append(alarm.update(np.array([False, True, False])))
    assert edges[-1] is Edge.RAISED
    assert alarm.channels_sustained.tolist() == [False, True, False]
