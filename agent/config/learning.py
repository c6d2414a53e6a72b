"""`[learning]`: how a line with no model (commissioning mode) learns its limits on the device.

    period_s   seconds of good data to learn from before SPC and shift alarms start
               (default 3600: one hour of normal running, a few thousand rows at 1 Hz)
    min_rows   good rows needed however long the period (default 200: a Phase I chart on
               fewer rows has limits too uncertain to alarm on)
    max_rows   the most rows kept while learning (default 100000; memory is rows x tags x 8
               bytes); learning ends early when it is reached

Only rows in which the tag had a good reading count: while a PLC is down, learning waits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.config.reader import Section

LEARNING_PERIOD_S = 3600.0
LEARNING_MIN_ROWS = 200
LEARNING_MAX_ROWS = 100_000


@dataclass(frozen=True)
class LearningConfig:
    """How long and on how many rows a line without a model learns."""

    period_s: float = LEARNING_PERIOD_S
    min_rows: int = LEARNING_MIN_ROWS
    max_rows: int = LEARNING_MAX_ROWS


def load_learning(t: Section) -> LearningConfig:
    """The `[learning]` table, checked (all keys optional)."""
    t.reject_unknown({"period_s", "min_rows", "max_rows"})
    period = t.get("period_s", float, LEARNING_PERIOD_S)
    if not (math.isfinite(period) and period > 0):
        raise t.error(
            "period_s",
            f"must be a number of seconds greater than 0, got {period!r}",
            f"e.g. period_s = {LEARNING_PERIOD_S:g} (one hour of normal running)",
        )
    min_rows = t.get("min_rows", int, LEARNING_MIN_ROWS)
    if min_rows < 10:
        raise t.error(
            "min_rows", f"{min_rows} rows are too few for control limits", "use 10 or more"
        )
    max_rows = t.get("max_rows", int, LEARNING_MAX_ROWS)
    if max_rows < min_rows:
        raise t.error("max_rows", f"{max_rows} is below min_rows {min_rows}", "raise max_rows")
    return LearningConfig(period_s=period, min_rows=min_rows, max_rows=max_rows)
