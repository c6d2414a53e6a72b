"""A line with no model yet: publish, learn on the device, then chart. Pure.

`CommissioningLine` takes samples like `LineMonitor` and returns the same `LineResult`. While it
learns (agent.pipeline.learning) every candidate tag's SPC state is `learning` and no alarm
can rise. Once the learning period is complete it builds a `LineMonitor` without a VAE on the
modelled (process) tags, with the learnt I-MR limits and shift detector, and from the next
sample on SPC and shift alarms run as on a line with a bundle: the shift alarm is the line's
fused decision (`vae-or-shift` with no VAE: AlarmActive), SPC raises its own alarms. Tags that
are not modelled keep the state `not-modelled: <class>`.

A bundle trained later on the workstation replaces all of it (agent.runtime.daemon).
"""

from __future__ import annotations

import math

import numpy as np

from agent.bundles.manifest import FusionMode
from agent.config import DetectionConfig
from agent.config.learning import LearningConfig
from agent.core.spc import ImrLimits
from agent.pipeline.detectors.shift import ShiftDetector
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.learning import LearnedLimits, Learner, LearningStatus
from agent.pipeline.line import LineMonitor, LineResult
from agent.pipeline.readings import refresh
from agent.types import Quality, Sample, TagReading

LEARNING_STATE = "learning"
NOT_MODELLED = "not-modelled"


def learned_line(
    line: str,
    learned: LearnedLimits,
    detection: DetectionConfig,
    clock: str | None,
) -> LineMonitor | None:
    """The line's monitor on learnt limits (None when no tag could be modelled)."""
    if not learned.modelled:
        return None
    limits = ImrLimits(
        center=np.asarray(learned.center, dtype=np.float64),
        sigma=np.asarray(learned.sigma, dtype=np.float64),
        mr_bar=np.asarray(learned.mr_bar, dtype=np.float64),
        nsigmas=3.0,
    )
    shift = ShiftDetector(learned.shift) if learned.shift is not None else None
    fusion = FusionMode.VAE_OR_SHIFT if shift is not None else FusionMode.VAE_OR_SPC
    return LineMonitor(
        line=line,
        channels=list(learned.modelled),
        vae=None,
        spc=SpcDetector(limits, detection.flatline_samples),
        detection=detection,
        clock=clock,
        fusion=fusion.value,
        shift=shift,
    )


class CommissioningLine:
    """Learns a line's limits from its first good rows, then monitors it on them."""

    def __init__(
        self,
        line: str,
        channels: list[str],
        detection: DetectionConfig,
        learning: LearningConfig,
        clock: str | None = None,
        learned: LearnedLimits | None = None,
    ) -> None:
        self.line = line
        self.channels = channels
        self.detection = detection
        self.clock = clock
        self.learner = Learner(channels, learning)
        self.latest: dict[str, TagReading] = {}
        self.learned: LearnedLimits | None = None
        self.monitor: LineMonitor | None = None
        #: The limits learnt on the last processed sample (for the runtime to keep), once.
        self.just_learned: LearnedLimits | None = None
        if learned is not None:
            self._start(learned)

    def _start(self, learned: LearnedLimits) -> None:
        self.learned = learned
        self.monitor = learned_line(self.line, learned, self.detection, self.clock)
        if self.monitor is not None:
            self.monitor.latest.update(self.latest)

    def _learn(self, sample: Sample) -> None:
        """Learn from a clock sample; once complete, the learnt line charts from this row on."""
        if self.clock is not None and sample.source != self.clock:
            return
        missing = TagReading(math.nan, Quality.BAD, "never read")
        readings = [self.latest.get(c, missing) for c in self.channels]
        row = np.array([r.value if r.quality is Quality.GOOD else math.nan for r in readings])
        if self.learner.observe(sample.ts, row):
            learned = self.learner.fit(now=sample.ts)
            self._start(learned)
            self.just_learned = learned

    def retune(self, detection: DetectionConfig) -> None:
        """Take a reloaded `[detection]`'s alarm rules (agent.pipeline.line.LineMonitor.retune)."""
        self.detection = detection
        if self.monitor is not None:
            self.monitor.retune(detection)

    def status(self) -> LearningStatus:
        """Learning's state, progress and ETA (`learned` once the limits are in)."""
        if self.learned is not None:
            return LearningStatus("learned", 1.0, 0.0, self.learned.rows)
        return self.learner.status()

    def _states(self, result: LineResult | None) -> dict[str, str]:
        if self.learned is None:
            return dict.fromkeys(self.channels, LEARNING_STATE)
        states = dict(result.spc_states) if result is not None else {}
        for name, (kind, _) in self.learned.classes.items():
            states.setdefault(name, f"{NOT_MODELLED}: {kind}")
        return states

    def process(self, sample: Sample) -> LineResult:
        """Take one sample from any source of the line and return the line's new state."""
        self.just_learned = None
        refresh(self.latest, sample)
        if self.monitor is None and self.learned is None:
            self._learn(sample)
        if self.monitor is not None:
            result = self.monitor.process(sample)
            return LineResult(
                ts=result.ts,
                readings=result.readings,
                spc_states=self._states(result),
                scores=result.scores,
                alarms=result.alarms,
                events=result.events,
                fused=result.fused,
                unjudged_rows=result.unjudged_rows,
                judged=result.judged,
            )
        # Learning: nothing judges the line yet, and its flags say so.
        return LineResult(
            ts=sample.ts,
            readings=dict(self.latest),
            spc_states=self._states(None),
            scores={},
            alarms={},
            events=(),
            fused=False,
            judged=False,
        )
