"""The drift forecast: the true crossing time lies in its interval on a synthetic ramp, no
forecast without a drift, the nearest limit ahead, and the live forecaster of a line."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import agent.core.forecast as forecast_module
from agent.core.forecast import Limit, forecast, limits_of
from agent.pipeline.forecasts import DriftForecaster

LIMITS = limits_of(205.0, 215.0)


def test_doctests() -> None:
    result = doctest.testmod(forecast_module)
    assert result.attempted > 0 and result.failed == 0


def ramp_forecast(seed: int, rate: float = 0.02) -> tuple[forecast_module.Forecast, float]:
    """A noisy ramp from 210 toward the 215 limit (reached after 250 s): its forecast and the
    true time left."""
    rng = np.random.default_rng(seed)
    t = np.arange(64.0)
    x = 210.0 + rate * t + 0.15 * rng.standard_normal(64)
    f = forecast("barrel_temp", 1000.0 + t, x, LIMITS, noise=0.15)
    assert f is not None
    return f, (215.0 - (210.0 + rate * 63.0)) / rate  # from the last row


def test_true_crossing_time_is_inside_the_interval_on_a_noisy_ramp() -> None:
    f, truth = ramp_forecast(0)
    assert f.low_s <= truth <= f.high_s
    assert f.low_s <= f.seconds <= f.high_s
    assert f.limit == Limit("upper", "SPC", 215.0)
    assert f.rate == pytest.approx(0.02, rel=0.3)
    assert f.ts == 1063.0
    assert f.minutes == pytest.approx(f.seconds / 60.0)


def test_the_interval_covers_the_truth_as_often_as_it_says() -> None:
    """About 95 % of the time (two standard errors on the slope and on the level): measured
    over 400 noisy ramps, at least 93 % and the misses on both sides, not all on one."""
    inside, early, late = 0, 0, 0
    for seed in range(400):
        f, truth = ramp_forecast(seed)
        inside += f.low_s <= truth <= f.high_s
        early += truth < f.low_s
        late += truth > f.high_s
    assert inside >= 0.93 * 400
    assert inside < 400 or (early, late) == (0, 0)
    assert early + late == 400 - inside


def test_the_interval_narrows_as_the_drift_gets_clearer() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(64.0)
    noise = 0.15 * rng.standard_normal(64)
    slow = forecast("x", t, 210.0 + 0.01 * t + noise, LIMITS, 0.15)
    fast = forecast("x", t, 210.0 + 0.05 * t + noise, LIMITS, 0.15)
    assert slow is not None and fast is not None
    assert (fast.high_s - fast.low_s) / fast.seconds < (slow.high_s - slow.low_s) / slow.seconds


def test_no_forecast_without_a_drift() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(64.0)
    assert forecast("x", t, 210.0 + 0.15 * rng.standard_normal(64), LIMITS, 0.15) is None
    # a slow wander smaller than three noise sigmas over the window is not a drift
    assert forecast("x", t, 210.0 + 0.005 * t, LIMITS, 0.15) is None
    assert forecast("x", t[:5], 210.0 + t[:5], LIMITS, 0.15) is None  # too few rows


def test_downward_drift_heads_for_the_lower_limit_and_past_spc_for_spec() -> None:
    t = np.arange(32.0)
    down = forecast("x", t, 210.0 - 0.1 * t, LIMITS, 0.1)
    assert down is not None and down.limit.side == "lower"
    assert down.seconds == pytest.approx((210.0 - 3.1 - 205.0) / 0.1)
    # already above the SPC limit: the spec limit beyond it, or nothing without one
    beyond = 216.0 + 0.1 * t
    assert forecast("x", t, beyond, LIMITS, 0.1) is None
    f = forecast("x", t, beyond, limits_of(205.0, 215.0, lsl=200.0, usl=225.0), 0.1)
    assert f is not None and f.limit == Limit("upper", "spec", 225.0)
    assert f.seconds == pytest.approx((225.0 - 219.1) / 0.1)


def test_gaps_are_skipped_and_a_slope_with_wide_doubt_has_an_open_end() -> None:
    t = np.arange(64.0)
    x = 210.0 + 0.02 * t
    x[10:14] = math.nan
    f = forecast("x", t, x, LIMITS, 0.01)
    assert f is not None and f.seconds == pytest.approx((215.0 - 211.26) / 0.02)
    rng = np.random.default_rng(5)
    wobbly = 210.0 + 0.05 * t + 0.3 * rng.standard_normal(64)
    g = forecast("x", t, wobbly, LIMITS, 0.01)  # noise far above the sigma it was told
    assert g is not None and g.high_s > g.seconds > g.low_s


def test_live_forecaster_reports_only_the_drifting_tag() -> None:
    channels = ["barrel_temp", "cooling_water_temp", "melt_pressure"]
    live = DriftForecaster(
        channels, np.array([205.0, 16.0, 170.0]), np.array([215.0, 20.0, 190.0]),
        np.array([0.17, 0.09, 0.95]), spec={"barrel_temp": (None, 230.0)}, every=4,
    )  # fmt: skip
    rng = np.random.default_rng(7)
    seen = {}
    for k in range(120):
        row = np.array([210.0, 18.0, 180.0]) + np.array([0.15, 0.08, 0.8]) * rng.standard_normal(3)
        if k >= 40:
            row[0] += 0.04 * (k - 40)
        seen = live.update(float(k), row)
    assert set(seen) == {"barrel_temp"}
    level = 210.0 + 0.04 * 79
    assert seen["barrel_temp"].limit.value == 215.0
    assert seen["barrel_temp"].low_s <= (215.0 - level) / 0.04 <= seen["barrel_temp"].high_s
    # a new bundle's SPC limits (a hot swap) replace the old ones; the spec limits stay
    live.set_limits(np.array([200.0, 16.0, 170.0]), np.array([250.0, 20.0, 190.0]), np.ones(3))
    assert live.limits[0] == limits_of(200.0, 250.0, None, 230.0)
    live.reset()
    assert live.last == {} and live.update(0.0, np.zeros(3)) == {}
