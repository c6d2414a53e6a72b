"""The quality policy of a numeric value a PLC sent: finite, and inside its instrument's range.

One rule for every source (Modbus, OPC-UA) and every consumer (SCADA, detection, the
recording), documented as a table in docs/quality.md:

- a non-finite value (NaN, +inf, -inf) is BAD: nothing was measured;
- a finite value outside the tag's `range` by more than `RANGE_MARGIN` of its span is
  UNCERTAIN (OPC-UA `UncertainEngineeringUnitsExceeded`): the instrument cannot read there,
  so the number is a wiring fault, a wrong scale or a saturated transmitter, and detection
  leaves it out like any reading that is not good;
- anything else keeps the quality its source gave it.

>>> judge(42.0, (0.0, 150.0)).quality.value
'good'
>>> judge(3.4e38, (0.0, 150.0)).reason
'3.4e+38 is outside its range 0..150 (beyond the 10 % margin)'
>>> judge(float("nan"), None).quality.value
'bad'
"""

from __future__ import annotations

import math

from agent.types import Quality, TagReading

#: How far past either end of `range` a value may go, as a share of the span, before it is
#: not believed: a 4-20 mA transmitter over-ranges a little (NAMUR NE 43 allows 3.8-20.5 mA).
RANGE_MARGIN = 0.1
#: Words in the reason of a non-finite value (agent.sinks.scada.limits maps them to a code).
NOT_FINITE = "not a finite number"
#: Words in the reason of a value outside its range.
OUTSIDE_RANGE = "is outside its range"


def plausible(value: float, eu_range: tuple[float, float] | None) -> bool:
    """Whether a finite value lies within `eu_range` widened by `RANGE_MARGIN` of its span."""
    if eu_range is None:
        return True
    low, high = eu_range
    margin = RANGE_MARGIN * (high - low)
    return low - margin <= value <= high + margin


def judge(
    value: float,
    eu_range: tuple[float, float] | None,
    quality: Quality = Quality.GOOD,
    reason: str = "",
    sender: str = "PLC",
) -> TagReading:
    """The reading of a numeric value under the policy; `quality`/`reason` as its source said."""
    if not math.isfinite(value):
        return TagReading(value, Quality.BAD, f"{sender} sent {value} ({NOT_FINITE})")
    if not plausible(value, eu_range):
        assert eu_range is not None
        low, high = eu_range
        margin = f"beyond the {RANGE_MARGIN * 100:g} % margin"
        why = f"{value:.6g} {OUTSIDE_RANGE} {low:g}..{high:g} ({margin})"
        return TagReading(value, Quality.UNCERTAIN, why)
    return TagReading(value, quality, reason)
