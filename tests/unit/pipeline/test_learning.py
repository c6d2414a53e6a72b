"""On-device learning (commissioning mode): what counts as learning time, what is modelled,
and the line that alarms on the learnt limits."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import agent.pipeline.learning as learning_module
from agent.config import DetectionConfig
from agent.config.learning import LearningConfig
from agent.pipeline.commissioning import CommissioningLine
from agent.pipeline.learning import LEARNED, LEARNING, WAITING, LearnedLimits, Learner
from agent.types import EventKind, EventState, Quality, Sample, TagReading

CHANNELS = ["pressure", "temperature", "setpoint", "pump_on"]
CONFIG = LearningConfig(period_s=60.0, min_rows=40, max_rows=10_000)


def test_doctests() -> None:
    result = doctest.testmod(learning_module)
    assert result.attempted > 0 and result.failed == 0


def _row(rng: np.random.Generator, t: int, step: float = 0.0) -> dict[str, float]:
    return {
        "pressure": 180.0 + rng.normal(0, 1.0) + step,
        "temperature": 210.0 + rng.normal(0, 0.3),
        "setpoint": 180.0,
        "pump_on": float(t % 2 == 0 and t > 5),
    }


def _sample(ts: float, values: dict[str, float], good: bool = True) -> Sample:
    readings = {
        k: TagReading(v, Quality.GOOD) if good else TagReading(math.nan, Quality.BAD, "timeout")
        for k, v in values.items()
    }
    return Sample(ts=ts, source="plc/dev", readings=readings)


def test_a_plc_that_is_down_stops_the_learning_clock() -> None:
    learner = Learner(CHANNELS, CONFIG)
    nan_row = np.full(len(CHANNELS), math.nan)
    for t in range(100):
        assert learner.observe(float(t), nan_row) is False
    status = learner.status()
    assert (status.state, status.progress, status.eta_s, status.rows) == (WAITING, 0.0, None, 0)
    assert learner.skipped == 100
    rng = np.random.default_rng(0)
    for t in range(100, 130):
        learner.observe(float(t), np.array(list(_row(rng, t).values())))
    status = learner.status()
    assert status.state == LEARNING and 0.4 < status.progress < 0.6
    assert status.eta_s == pytest.approx(31.0)
    # An outage in the middle: no time is counted across it, and its rows are not kept.
    for t in range(130, 400):
        learner.observe(float(t), nan_row)
    learner.observe(400.0, np.array(list(_row(rng, 400).values())))
    assert learner.status().eta_s == pytest.approx(31.0)
    assert learner.rows == 31


def test_only_process_tags_are_modelled_and_each_says_why_not() -> None:
    rng = np.random.default_rng(1)
    learner = Learner(CHANNELS, CONFIG)
    done = [learner.observe(float(t), np.array(list(_row(rng, t).values()))) for t in range(80)]
    assert done.index(True) == 60  # 60 s of good data at one row a second
    learned = learner.fit(now=1000.0)
    assert learned.modelled == ["pressure", "temperature"]
    assert learned.classes["setpoint"][0] == "constant"
    assert learned.classes["pump_on"][0] == "binary"
    assert learned.center[0] == pytest.approx(180.0, abs=1.0)
    assert learned.shift is not None and learned.shift.channels == 2
    again = LearnedLimits.from_dict(learned.to_dict())
    assert again == learned


def test_a_tag_never_read_good_while_learning_is_not_modelled() -> None:
    rng = np.random.default_rng(2)
    learner = Learner(CHANNELS, CONFIG)
    for t in range(80):
        row = np.array(list(_row(rng, t).values()))
        row[1] = math.nan  # the temperature's address is wrong: always bad
        learner.observe(float(t), row)
    learned = learner.fit(now=0.0)
    assert learned.modelled == ["pressure"]
    assert learned.classes["temperature"] == ("no-data", "only 0 good readings while learning")


def test_the_line_learns_then_raises_an_alarm_on_a_step() -> None:
    rng = np.random.default_rng(3)
    line = CommissioningLine("l1", CHANNELS, DetectionConfig(), CONFIG)
    t = 0
    for t in range(20):  # PLC down at start: nothing learnt
        result = line.process(_sample(float(t), _row(rng, t), good=False))
        assert result.spc_states == dict.fromkeys(CHANNELS, "learning")
    assert line.status().progress == 0.0
    while line.learned is None:
        t += 1
        result = line.process(_sample(float(t), _row(rng, t)))
        assert not result.alarm_active and not result.events
    assert line.just_learned is line.learned and line.status().state == LEARNED
    events = []
    for _ in range(200):  # normal running on the learnt limits
        t += 1
        events += line.process(_sample(float(t), _row(rng, t))).events
    normal = len(events)
    for _ in range(60):  # a +8 sigma step on the pressure
        t += 1
        result = line.process(_sample(float(t), _row(rng, t, step=8.0)))
        events += result.events
    assert result.spc_states["setpoint"] == "not-modelled: constant"
    raised = [e for e in events[normal:] if e.state is EventState.RAISED]
    assert raised and {e.kind for e in raised} <= {EventKind.SPC, EventKind.ANOMALY}
    assert any(e.tag == "pressure" for e in raised)
    assert result.alarm_active or result.spc_alarm_active


def test_the_line_resumes_on_limits_learnt_before() -> None:
    rng = np.random.default_rng(4)
    first = CommissioningLine("l1", CHANNELS, DetectionConfig(), CONFIG)
    t = 0
    while first.learned is None:
        t += 1
        first.process(_sample(float(t), _row(rng, t)))
    again = CommissioningLine("l1", CHANNELS, DetectionConfig(), CONFIG, learned=first.learned)
    result = again.process(_sample(float(t + 1), _row(rng, t + 1)))
    assert again.status().state == LEARNED
    assert result.spc_states["pressure"] != "learning"
