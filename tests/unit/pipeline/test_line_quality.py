"""What the line makes of readings that are not good: each reading's own time, the last value
held under a bad status, one bad poll bridged for the VAE, and flags that say when nothing was
judged (agent.pipeline.line, agent.pipeline.readings)."""

from __future__ import annotations

import math

import numpy as np

from agent.config import DetectionConfig
from agent.core.spc import ImrLimits
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.detectors.vae import VaeDetector
from agent.pipeline.line import BRIDGE_ROWS, LineMonitor
from agent.types import Quality, Sample, Score, TagReading

CHANNELS = ["speed", "temp"]
WINDOW = 4


class CountingModel:
    """A WindowModel that scores every window 0.1 and remembers the windows it saw."""

    def __init__(self) -> None:
        self.windows: list[np.ndarray] = []

    def score_one(self, window: np.ndarray) -> Score:
        self.windows.append(window.copy())
        return Score(0.1, 1.0, (0.05, 0.05))


def monitor(with_vae: bool = True) -> tuple[LineMonitor, CountingModel]:
    model = CountingModel()
    limits = ImrLimits(
        center=np.array([100.0, 50.0]), sigma=np.array([5.0, 2.0]), mr_bar=np.array([5.0, 2.0])
    )
    vae = VaeDetector(model, WINDOW, len(CHANNELS)) if with_vae else None
    line = LineMonitor(
        "l1", CHANNELS, vae, SpcDetector(limits), DetectionConfig(), clock="plc-a/main"
    )
    return line, model


def good(ts: float, speed: float = 100.0, temp: float = 50.0) -> Sample:
    return Sample(ts, "plc-a/main", {"speed": TagReading(speed), "temp": TagReading(temp)})


def bad_speed(ts: float) -> Sample:
    return Sample(
        ts,
        "plc-a/main",
        {
            "speed": TagReading(math.nan, Quality.BAD, "no reply within 1.0 s"),
            "temp": TagReading(50.0),
        },
    )


def test_each_reading_carries_the_time_of_its_own_poll() -> None:
    line, _ = monitor()
    line.process(good(10.0))
    slow = Sample(10.5, "plc-b/main", {"level": TagReading(3.0)})
    line.process(slow)
    result = line.process(good(11.0))
    assert result.readings["speed"].ts == 11.0 and result.readings["level"].ts == 10.5
    assert result.ts == 11.0


def test_a_bad_reading_keeps_the_last_value_under_the_time_of_the_failed_poll() -> None:
    line, _ = monitor()
    line.process(good(1.0, speed=123.0))
    result = line.process(bad_speed(2.0))
    speed = result.readings["speed"]
    assert speed.quality is Quality.BAD and speed.value == 123.0 and speed.ts == 2.0
    assert speed.reason == "no reply within 1.0 s"
    again = line.process(bad_speed(3.0)).readings["speed"]
    assert again.value == 123.0 and again.ts == 3.0


def test_a_bad_reading_before_any_good_one_has_no_value() -> None:
    line, _ = monitor()
    assert math.isnan(line.process(bad_speed(1.0)).readings["speed"].value)


def test_one_bad_poll_is_bridged_and_the_vae_keeps_scoring() -> None:
    line, model = monitor()
    for t in range(WINDOW):
        line.process(good(float(t), speed=100.0 + t))
    assert len(model.windows) == 1
    result = line.process(bad_speed(10.0))
    assert result.score is not None  # the window went on: the held value stood in
    assert model.windows[-1][-1][0] == 100.0 + WINDOW - 1  # the last good speed, held
    assert line.bridged == 1 and result.judged
    assert line.process(good(11.0)).score is not None


def test_a_gap_longer_than_the_bridge_starts_the_window_over_and_the_flags_say_so() -> None:
    line, model = monitor()
    for t in range(WINDOW):
        line.process(good(float(t)))
    results = [line.process(bad_speed(10.0 + t)) for t in range(BRIDGE_ROWS + WINDOW + 1)]
    scored = [r for r in results if r.score is not None]
    assert len(scored) == BRIDGE_ROWS  # only the bridged rows were scored
    assert results[-1].unjudged_rows == WINDOW + 1 and not results[-1].judged
    assert all(r.judged for r in results[:WINDOW])  # within one window, still a verdict
    refill = [line.process(good(20.0 + t)) for t in range(WINDOW)]
    assert [r.score is not None for r in refill] == [False] * (WINDOW - 1) + [True]
    assert refill[-1].judged and refill[-1].unjudged_rows == 0
    assert len(model.windows) == 1 + BRIDGE_ROWS + 1


def test_nothing_is_judged_before_the_first_window_is_full() -> None:
    line, _ = monitor()
    first = line.process(good(0.0))
    assert not first.judged


def test_an_uncertain_reading_is_kept_out_of_detection() -> None:
    line, model = monitor()
    for t in range(WINDOW):
        line.process(good(float(t)))
    wild = Sample(
        9.0,
        "plc-a/main",
        {
            "speed": TagReading(3.4e38, Quality.UNCERTAIN, "3.4e+38 is outside its range 0..150"),
            "temp": TagReading(50.0),
        },
    )
    result = line.process(wild)
    assert result.readings["speed"].value == 3.4e38  # published as the PLC said it
    assert np.abs(model.windows[-1]).max() < 1e6  # the VAE never saw it
    assert result.spc_states["speed"] != "in-control" or not result.spc_alarm_active
    assert not result.alarm_active


def test_a_line_without_a_vae_is_judged_on_complete_rows() -> None:
    line, _ = monitor(with_vae=False)
    assert line.process(good(0.0)).judged
    assert line.process(bad_speed(1.0)).judged  # bridged
    assert not line.process(bad_speed(2.0)).judged
