"""The line's latest reading of every tag: each stamped with its own poll's time, and a reading
that is not good keeping the last value read (what SCADA shows beside the Bad status). Pure.

Several sources feed one line at their own rates, so a line result holds readings of different
ages; each carries the time of the poll that read it (`TagReading.ts`), never the time of the
sample that happened to make the row.
"""

from __future__ import annotations

import math
from dataclasses import replace

from agent.types import Quality, Sample, TagReading


def stamped(reading: TagReading, ts: float, previous: TagReading | None) -> TagReading:
    """`reading` with its poll's time, and, if it has no value of its own, `previous`'s value."""
    held = (
        previous is not None
        and reading.quality is not Quality.GOOD
        and not math.isfinite(reading.value)
        and reading.text is None
    )
    if held:
        assert previous is not None
        return replace(reading, value=previous.value, text=previous.text, ts=reading.ts or ts)
    if reading.ts is None:
        return replace(reading, ts=ts)
    return reading


def refresh(latest: dict[str, TagReading], sample: Sample) -> None:
    """Take one sample's readings into `latest`, stamped and with last values held."""
    for name, reading in sample.readings.items():
        latest[name] = stamped(reading, sample.ts, latest.get(name))
