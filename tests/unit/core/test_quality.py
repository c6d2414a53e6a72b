"""The quality policy of a numeric value (agent.core.quality): every branch of the table."""

from __future__ import annotations

import math

import pytest

from agent.core.quality import RANGE_MARGIN, judge, plausible
from agent.types import Quality

RPM = (0.0, 150.0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_value_is_bad_and_says_so(value: float) -> None:
    reading = judge(value, RPM)
    assert reading.quality is Quality.BAD
    assert "not a finite number" in reading.reason and reading.reason.startswith("PLC sent")


def test_a_non_finite_value_is_bad_even_without_a_range_and_when_the_source_said_good() -> None:
    assert judge(math.nan, None, Quality.GOOD, "", "server").reason.startswith("server sent")


def test_a_finite_value_far_outside_the_range_is_uncertain_and_names_the_range() -> None:
    reading = judge(3.4e38, RPM)
    assert reading.quality is Quality.UNCERTAIN
    assert reading.value == 3.4e38  # what the PLC said is kept, only not believed
    assert "outside its range 0..150" in reading.reason


def test_the_margin_is_a_share_of_the_span_at_both_ends() -> None:
    margin = RANGE_MARGIN * 150.0
    assert plausible(150.0 + margin, RPM) and plausible(-margin, RPM)
    assert not plausible(150.0 + margin + 0.01, RPM) and not plausible(-margin - 0.01, RPM)
    assert judge(150.0 + margin / 2, RPM).quality is Quality.GOOD


def test_inside_the_range_the_source_quality_stands() -> None:
    reading = judge(42.0, RPM, Quality.UNCERTAIN, "UncertainSensorCalibration")
    assert (reading.quality, reading.reason) == (Quality.UNCERTAIN, "UncertainSensorCalibration")
    assert judge(1e9, None).quality is Quality.GOOD  # no range: nothing to check against
