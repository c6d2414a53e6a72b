"""Probation: the candidate scores while healthy; errors, NaN and alarm storms fail it.

The candidates here are small detectors behind our own Detector protocol; the same path with
real onnxruntime models runs in tests/integration/runtime/test_update_hotswap.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.pipeline.detectors.base import FloatArray
from agent.runtime.probation import ProbationDetector, ProbationPolicy
from agent.types import Score

WINDOW = np.zeros((4, 2))


class Scripted:
    """Returns the scores it is given, one per window; raises on the string 'boom'."""

    def __init__(self, values: list[float | str], threshold: float = 1.0) -> None:
        self.values = list(values)
        self.threshold = threshold

    def score_one(self, window: FloatArray) -> Score:
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        if value == "boom":
            raise RuntimeError("onnxruntime: bad input")
        assert isinstance(value, float)
        return Score(value, self.threshold, (value, 0.0))


POLICY = ProbationPolicy(windows=10, min_windows=5, alarm_ratio=5.0, alarm_floor=0.2)


def run(candidate: Scripted, n: int) -> tuple[ProbationDetector, list[float]]:
    probe = ProbationDetector(candidate, Scripted([0.5]), POLICY)
    return probe, [probe.score_one(WINDOW).value for _ in range(n)]


def test_healthy_candidate_scores_and_passes() -> None:
    probe, scores = run(Scripted([0.1]), 10)
    assert scores == [0.1] * 10
    assert probe.passed and probe.failure is None


def test_inference_error_fails_and_the_old_model_answers() -> None:
    probe, scores = run(Scripted([0.1, 0.1, "boom", 0.1]), 6)
    assert scores == [0.1, 0.1, 0.5, 0.5, 0.5, 0.5]
    assert probe.failure is not None and "inference error" in probe.failure
    assert not probe.passed


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_score_fails(bad: float) -> None:
    probe, scores = run(Scripted([0.1, bad]), 3)
    assert scores == [0.1, 0.5, 0.5]
    assert probe.failure is not None and "non-finite" in probe.failure


def test_alarm_storm_fails_after_min_windows() -> None:
    probe, scores = run(Scripted([2.0]), 10)
    assert scores[:4] == [2.0] * 4  # judged only from min_windows on
    assert probe.failure is not None and "above threshold" in probe.failure
    assert scores[5:] == [0.5] * 5


def test_alarms_the_old_model_also_sees_are_not_a_failure() -> None:
    probe = ProbationDetector(Scripted([2.0]), Scripted([3.0]), POLICY)
    for _ in range(10):
        probe.score_one(WINDOW)
    assert probe.passed
