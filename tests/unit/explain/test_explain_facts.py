"""Facts, template and guard on constructed events: the numbers are known, so is the answer."""

from __future__ import annotations

import numpy as np
import pytest

from agent.explain.facts import PastEvent, build_facts, direction
from agent.explain.template import render
from tests.explain_helpers import CHANNELS, N, context, normal_rows, snapshot


def test_clogged_filter_pressure_up_and_flow_down(catalogue) -> None:
    rows = normal_rows()
    rows[16:, 3] += 15.0  # melt pressure steps up
    rows[:, 1] -= np.linspace(0.0, 9.0, N)  # throughput drifts down
    contrib = (0.9, 4.0, 1.0, 12.0, 0.8)
    facts = build_facts(
        snapshot(rows, contrib, {"melt_pressure": ("beyond-limits",)}), context(), catalogue
    )

    assert [t.tag for t in facts.tags[:2]] == ["melt_pressure", "throughput"]
    pressure, flow = facts.tags[0], facts.tags[1]
    assert pressure.direction == "step-up" and pressure.outside == "above"
    assert pressure.rules == ("beyond-limits",)
    assert (pressure.low, pressure.high) == (181.0, 199.0)
    assert flow.direction == "drift-down"
    assert facts.causes[0].id == "clogged-screen" and facts.causes[0].fit == 1.0
    assert facts.duration_s == pytest.approx(15.0)  # the step began 15 s before the raise
    text = render(facts, "en")
    assert "clogged screen pack" in text and "F-101" in text and "melt_pressure" in text
    assert 2 <= text.count(". ") + 1 <= 4


def test_stuck_and_noisy(catalogue) -> None:
    rows = normal_rows(1)
    rows[10:, 1] = rows[9, 1]  # throughput frozen
    rows[:, 4] = 1.0 + np.random.default_rng(2).normal(size=N) * 0.3  # vibration x6 noise
    contrib = (0.5, 6.0, 0.5, 0.5, 5.0)
    facts = build_facts(snapshot(rows, contrib), context(), catalogue)
    by_tag = {t.tag: t.direction for t in facts.tags}
    assert by_tag["throughput"] == "stuck"
    assert by_tag["vibration_rms"] == "noisy"
    assert {c.id for c in facts.causes} >= {"frozen-feeder-reading", "gearbox-bearing-wear"}


def test_steady_noise_is_steady() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        x = 50.0 + rng.normal(size=N) * 0.5
        assert direction(x, 50.0, 1.0, 0.5 * 1.128)[0] == "steady"


def test_correlation_break_names_the_decoupled_tag(catalogue) -> None:
    ref = np.eye(len(CHANNELS))
    ref[0, 2] = ref[2, 0] = 0.95  # motor current follows screw speed in training
    rows = normal_rows(3)
    load = np.sin(np.linspace(0, 3 * np.pi, N)) * 3
    rows[:, 0] += load
    rows[:, 2] -= load  # now it moves against it
    contrib = (1.0, 0.5, 7.0, 0.5, 0.5)
    facts = build_facts(snapshot(rows, contrib), context(ref), catalogue)
    assert facts.breaks and facts.breaks[0].tag == "motor_current"
    assert facts.breaks[0].other == "screw_speed" and facts.breaks[0].recent < 0
    assert facts.causes[0].id == "current-signal-miswired"
    assert "no longer follows screw_speed" in render(facts, "en")


def test_similar_past_event_with_note(catalogue) -> None:
    rows = normal_rows(4)
    rows[16:, 3] += 15.0
    contrib = (0.5, 0.5, 0.5, 12.0, 0.5)
    past = [
        PastEvent(
            "old-1",
            10.0,
            dict(zip(CHANNELS, (0.4, 0.6, 0.5, 10.0, 0.4), strict=True)),
            "re-zeroed PT-201",
        ),
        PastEvent(
            "old-2", 20.0, dict(zip(CHANNELS, (9.0, 0.5, 0.5, 0.5, 0.5), strict=True)), "other"
        ),
    ]
    facts = build_facts(snapshot(rows, contrib), context(), catalogue, past)
    assert [s.event_id for s in facts.similar] == ["old-1"]
    assert facts.causes[0].id == "pressure-transducer-offset"
    assert "re-zeroed PT-201" in render(facts, "en")


def test_chinese_template(catalogue) -> None:
    rows = normal_rows()
    rows[16:, 3] += 15.0
    rows[:, 1] -= np.linspace(0.0, 9.0, N)
    facts = build_facts(snapshot(rows, (0.9, 4.0, 1.0, 12.0, 0.8)), context(), catalogue)
    text = render(facts, "zh")
    assert "过滤网堵塞" in text and "高于正常范围" in text and "阶跃上升" in text
    assert 2 <= text.count("。") <= 4
    with pytest.raises(ValueError, match="language"):
        render(facts, "fr")


def test_a_quiet_window_breaks_no_correlation(catalogue) -> None:
    # In 32 s the slow shared driver does not move: the recent correlation is noise, near 0,
    # but every tag sits where its partner predicts, so nothing "broke".
    ref = np.eye(len(CHANNELS))
    ref[0, 2] = ref[2, 0] = 0.95
    facts = build_facts(
        snapshot(normal_rows(6), (1.0, 0.5, 7.0, 0.5, 0.5)), context(ref), catalogue
    )
    assert facts.breaks == ()


def test_noise_that_just_began_is_noisy_not_a_step() -> None:
    rng = np.random.default_rng(7)
    x = 2.2 + rng.normal(size=64) * 0.05
    x[-6:] = 2.2 + np.array([0.4, -0.35, 0.3, -0.45, 0.35, -0.4])  # gearbox rattle starts
    assert direction(x, 2.2, 0.07, 0.06)[0] == "noisy"
    y = 2.2 + rng.normal(size=64) * 0.05
    y[-6:] += 0.5  # one jump, then the usual noise: a step
    assert direction(y, 2.2, 0.07, 0.06)[0] == "step-up"


def test_isolated_spikes_are_spikes_and_a_smooth_swing_is_not_noise() -> None:
    rng = np.random.default_rng(8)
    calm = 100.0 + 0.1 * rng.standard_normal(64)
    spiky = calm.copy()
    spiky[[40, 47, 55]] += (6.0, -5.0, 7.0)  # three far readings, calm between them
    assert direction(spiky, center=100.0, sigma=1.0, mr_bar=0.11)[0] == "spikes"
    grown = calm.copy()
    grown[52:] = 100.0 + 0.8 * rng.standard_normal(12)  # the noise grew eightfold
    assert direction(grown, center=100.0, sigma=1.0, mr_bar=0.11)[0] == "noisy"
    swing = calm + 3.0 * np.sin(np.linspace(0.0, 3 * np.pi, 64))
    assert direction(swing, center=100.0, sigma=1.0, mr_bar=0.11)[0] != "noisy"


@pytest.mark.parametrize(("rate", "unit"), [(0.25, "s"), (0.01, "min")])
def test_the_forecast_in_words_is_bound_by_the_guard(catalogue, rate: float, unit: str) -> None:
    import dataclasses

    from agent.core.forecast import forecast, limits_of
    from agent.explain.guard import check

    rows = normal_rows(6)
    i = CHANNELS.index("melt_pressure")
    rows[:, i] = 190.0 + rate * np.arange(N) * (1.0 if unit == "s" else 25.0)
    rows[:, i] += np.random.default_rng(1).normal(size=N) * 0.05
    ctx = context()
    ts = 1000.0 + np.arange(N, dtype=np.float64)
    if unit == "min":  # a slow drift: the same rows, a 25 times longer time base
        ts = 1000.0 + 25.0 * np.arange(N, dtype=np.float64)
    f = forecast("melt_pressure", ts, rows[:, i], limits_of(181.0, 199.0 + 10.0), 0.8)
    assert f is not None
    snap = dataclasses.replace(
        snapshot(rows, (0.5, 0.5, 0.5, 9.0, 0.5)), ts=ts, forecasts={"melt_pressure": f}
    )
    facts = build_facts(snap, ctx, catalogue)
    pressure = facts.tags[0]
    assert pressure.tag == "melt_pressure" and pressure.forecast == f
    text = render(facts, "en")
    said = f"in about {f.seconds:.0f} s" if unit == "s" else "min at the current rate"
    assert said in text, text
    assert check(text, facts, catalogue).accepted, check(text, facts, catalogue)
    assert check(render(facts, "zh"), facts, catalogue, language="zh").accepted
    wrong = text.replace("in about ", "in about 9", 1)
    assert check(wrong, facts, catalogue).reason == "wrong-number"


def test_doctests_of_the_facts_and_directions() -> None:
    import doctest

    import agent.explain.directions as directions_module
    import agent.explain.facts as facts_module

    for module in (facts_module, directions_module):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
