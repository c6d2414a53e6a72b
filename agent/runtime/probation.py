"""Probation of a newly swapped-in model: score with it, keep the old one scoring in shadow.

For `policy.windows` windows the candidate scores the line while the incumbent scores the same
windows beside it. The candidate fails, and the incumbent's score is used from that window on,
when it raises an inference error, returns a NaN or infinite score or contribution, or, after
`policy.min_windows`, puts far more windows above its threshold than the incumbent does (more
than `alarm_ratio` times the incumbent's rate and more than `alarm_floor` of all windows).
Nothing here touches the disk or awaits: it runs inside the detection loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.pipeline.detectors.base import FloatArray, WindowModel
from agent.types import Score


@dataclass(frozen=True)
class ProbationPolicy:
    """How long a new model is watched and what counts as unhealthy."""

    windows: int = 600
    min_windows: int = 50
    alarm_ratio: float = 5.0
    alarm_floor: float = 0.05


class ProbationDetector:
    """A window model that runs a candidate model under watch, with the old model in shadow."""

    def __init__(
        self, candidate: WindowModel, incumbent: WindowModel, policy: ProbationPolicy
    ) -> None:
        self.candidate = candidate
        self.incumbent = incumbent
        self.policy = policy
        self.windows = 0
        self.candidate_over = 0
        self.incumbent_over = 0
        self.failure: str | None = None

    @property
    def passed(self) -> bool:
        """True once the candidate has scored `policy.windows` windows without failing."""
        return self.failure is None and self.windows >= self.policy.windows

    def _fail(self, why: str) -> None:
        if self.failure is None:
            self.failure = why

    def score_one(self, window: FloatArray) -> Score:
        """The candidate's score while it is healthy; the incumbent's once it has failed."""
        old = self.incumbent.score_one(window)
        if self.failure is not None:
            return old
        try:
            new = self.candidate.score_one(window)
        except Exception as exc:  # any inference failure is a health failure, not a crash
            self._fail(f"inference error after {self.windows} windows: {exc}")
            return old
        self.windows += 1
        if not math.isfinite(new.value) or not all(math.isfinite(c) for c in new.contributions):
            self._fail(f"non-finite score ({new.value}) at window {self.windows}")
            return old
        self.candidate_over += new.value > new.threshold
        self.incumbent_over += old.value > old.threshold
        self._check_rate()
        return old if self.failure is not None else new

    def _check_rate(self) -> None:
        p = self.policy
        if self.windows < p.min_windows:
            return
        new_rate = self.candidate_over / self.windows
        old_rate = self.incumbent_over / self.windows
        if new_rate > p.alarm_floor and new_rate > p.alarm_ratio * old_rate:
            self._fail(
                f"{new_rate:.1%} of {self.windows} windows above threshold against "
                f"{old_rate:.1%} for the previous model"
            )
