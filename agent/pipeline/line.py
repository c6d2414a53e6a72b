"""The detection pipeline of one line: detectors, the alarm table, the fused decision. Pure.

Every clock row goes to each detector of the line (agent.pipeline.detectors: SPC charts, the
VAE, the drift-tolerant shift detector), and each detector's score to its alarm in one table:

    spc      SustainedRuleAlarm: one channel breaking a rule in `spc_hits` of `spc_span` rows
    vae      DebouncedAlarm on the VAE score: `raise_after` above its threshold, cleared after
             `clear_after` below `clear_ratio` x it (the hysteresis every score alarm shares)
    shift    DebouncedAlarm on the shift score, the same rule; while it holds, the shift
             detector's baseline does not learn (each detector is told its alarm's state)
    vae-plus-shift  DebouncedAlarm on the fusion's summed score (only in that fusion mode)

A line in commissioning mode (no bundle yet, agent.pipeline.commissioning) has no VAE: its
`vae` alarm never rises, and SPC and the shift detector run on the limits learned on the device.

The fusion (agent.pipeline.events.fusion) turns the alarms into the line's one decision. The
live agent and offline replay (`lineside score`) feed the same `LineMonitor`, built by
agent.pipeline.build, so what was measured offline is what runs on the line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agent.config import DetectionConfig
from agent.pipeline.alarm_events import AlarmEvents
from agent.pipeline.attribution import TagAttribution
from agent.pipeline.detectors.shift import ShiftDetector
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.detectors.vae import VaeDetector
from agent.pipeline.events.alarms import DebouncedAlarm, Edge, SustainedRuleAlarm
from agent.pipeline.events.fusion import LEGACY_FUSION, SHIFT_FUSIONS, Fusion
from agent.pipeline.forecasts import DriftForecaster
from agent.pipeline.readings import refresh
from agent.pipeline.result import LineResult as LineResult  # where it always was
from agent.types import Event, EventKind, Quality, Sample, Score, TagReading

#: The summed score's alarm in the table (the vae-plus-shift fusion).
SUMMED = "vae-plus-shift"
#: Consecutive rows a missing channel is held at its last good value for the VAE.
BRIDGE_ROWS = 1


class LineMonitor(AlarmEvents):
    """Keeps the detectors and the alarm table of one line and processes samples one at a time."""

    def __init__(
        self,
        line: str,
        channels: list[str],
        vae: VaeDetector | None,
        spc: SpcDetector,
        detection: DetectionConfig,
        clock: str | None = None,
        fusion: str = LEGACY_FUSION,
        shift: ShiftDetector | None = None,
    ) -> None:
        self.line = line
        self.channels = channels
        # Detection steps on samples of the clock source only; samples of other sources of the
        # line just refresh the latest values, so the window keeps one row per clock period.
        self.clock = clock
        self._last_states: dict[str, str] = {c: "no-data" for c in channels}
        self.spc = spc
        self.vae = vae
        self.shift = shift
        self.raise_after, self.clear_after = detection.raise_after, detection.clear_after
        self.clear_ratio = detection.clear_ratio
        self.detection = detection
        self.alarms: dict[str, DebouncedAlarm | SustainedRuleAlarm] = {
            "spc": self._rule_alarm(),
            "vae": self._score_alarm(),
        }
        if shift is not None:
            self.alarms["shift"] = self._score_alarm()
        # An SPC alarm counts as sustained once it has held for one window's length of rows
        # (a line without a VAE, in commissioning: its rule span).
        sustain = vae.window.size if vae is not None else detection.spc_span
        self.fusion = Fusion(fusion, sustain=sustain)
        if self.fusion.sums:
            self.alarms[SUMMED] = self._score_alarm()
        self.fused = False
        self.latest: dict[str, TagReading] = {}
        self.last_score: Score | None = None
        # A channel missing from a row (a bad poll) is bridged for the VAE with its last good
        # value for BRIDGE_ROWS rows, counted in `bridged`; longer, the window starts over.
        self._last_good = np.full(len(channels), math.nan)
        self._missing = np.zeros(len(channels), dtype=np.int64)
        self.bridged = 0
        #: How many rows without a verdict the flags stay a verdict: one window (without a VAE,
        #: none: every row is charted, once bridged).
        self.judge_limit = vae.window.size if vae is not None else 0
        self.unjudged_rows = self.judge_limit + 1  # nothing judged yet
        self.attribution = TagAttribution(len(channels))
        self.attribution_shares = self.attribution.shares
        #: Set by the factory from the SPC limits (and spec limits): TimeToLimit per tag.
        self.forecaster: DriftForecaster | None = None

    @property
    def bundle_vae(self) -> VaeDetector:
        """The VAE detector of a line built from a bundle (a hot swap replaces its model)."""
        if self.vae is None:
            raise RuntimeError(f"line {self.line} has no VAE: it runs in commissioning mode")
        return self.vae

    def _score_alarm(self) -> DebouncedAlarm:
        return DebouncedAlarm(self.raise_after, self.clear_after)

    def _rule_alarm(self) -> SustainedRuleAlarm:
        d = self.detection
        return SustainedRuleAlarm(len(self.channels), d.spc_hits, d.spc_span, d.clear_after)

    def active_kinds(self) -> dict[EventKind, bool]:
        """Whether the alarm behind each kind of event holds: the anomaly events follow the
        VAE's alarm, or the fused decision in a shift fusion; the SPC events the rule alarm."""
        anomaly = self.fused if self.fusion.mode in SHIFT_FUSIONS else self.alarms["vae"].active
        return {EventKind.ANOMALY: anomaly, EventKind.SPC: self.alarms["spc"].active}

    def close_alarm(self, kind: EventKind) -> None:
        """Forget that the alarm behind `kind` holds (its raise was journaled as cleared): if
        the fault is still there it raises again, as a new alarm with its own edges."""
        if kind is EventKind.SPC:
            self.alarms["spc"] = self._rule_alarm()
        elif kind is EventKind.ANOMALY and self.fusion.mode in SHIFT_FUSIONS:
            self.fused = False  # the detectors' alarms stand; the fusion raises anew on them
        elif kind is EventKind.ANOMALY:
            self.alarms["vae"] = self._score_alarm()

    def replace_shift(self, shift: ShiftDetector | None) -> None:
        """A new bundle's shift detector (a hot swap), with a fresh alarm of its own."""
        self.shift = shift
        self.alarms.pop("shift", None)
        if shift is not None:
            self.alarms["shift"] = self._score_alarm()

    def _active(self) -> dict[str, bool]:
        return {name: alarm.active for name, alarm in self.alarms.items()}

    def process(self, sample: Sample) -> LineResult:
        """Take one sample from any source of the line and return the line's new state."""
        refresh(self.latest, sample)
        if self.clock is not None and sample.source != self.clock:
            return LineResult(
                ts=sample.ts,
                readings=dict(self.latest),
                spc_states=dict(self._last_states),
                scores={},
                alarms=self._active(),
                events=(),
                fused=self.fused,
                unjudged_rows=self.unjudged_rows,
                judged=self.judged,
                forecasts={} if self.forecaster is None else self.forecaster.last,
            )
        missing = TagReading(math.nan, Quality.BAD, "never read")
        readings = [self.latest.get(c, missing) for c in self.channels]
        good = np.array([r.quality is Quality.GOOD for r in readings])
        row = np.array([r.value if ok else math.nan for r, ok in zip(readings, good, strict=True)])
        events: list[Event] = []
        scores: dict[str, Score] = {}

        scores["spc"] = self.spc.update(row)
        state = self.spc.last
        assert state is not None
        spc_states = {
            c: SpcDetector.describe(state, i, bool(good[i])) for i, c in enumerate(self.channels)
        }
        self._last_states = spc_states
        spc_alarm = self.alarms["spc"]
        assert isinstance(spc_alarm, SustainedRuleAlarm)
        edge = spc_alarm.update(good & state.out_of_control)
        if edge is not Edge.NONE:
            sustained = [
                c for c, s in zip(self.channels, spc_alarm.channels_sustained, strict=True) if s
            ]
            events.append(self._spc_event(sample.ts, edge, sustained, spc_states))

        if self.shift is not None:
            scores["shift"] = shift_score = self.shift.update(row)
            self._level("shift", shift_score)
        # In a shift fusion the anomaly events follow the fused decision (AlarmActive), so an
        # alarm the shift detector carries is journaled and explained like one the VAE carries.
        follows_fusion = self.fusion.mode in SHIFT_FUSIONS
        # A row with a tag not good holds NaN there (every good reading is finite: the sources
        # and replay mark a non-finite value otherwise); one bad poll is bridged, a longer gap
        # starts the VAE's window over.
        complete = self._bridge(row, good)
        score = self.vae.update(complete) if self.vae is not None else None
        judged = score is not None if self.vae is not None else bool(np.isfinite(complete).all())
        self.unjudged_rows = 0 if judged else self.unjudged_rows + 1
        if score is not None:
            scores["vae"] = self.last_score = score
            edge = self._level("vae", score)
            if edge is not Edge.NONE and not follows_fusion:
                events.append(self._anomaly_event(sample.ts, edge, score))

        shift = scores.get("shift")
        summed = self.fusion.summed(
            score.ratio if score is not None else None,
            shift.ratio if shift is not None else None,
        )
        if self.fusion.sums:
            self._level(SUMMED, summed)
        was_fused = self.fused
        alarms = self._active()
        self.fused = self.fusion.update(
            alarms["vae"],
            alarms["spc"],
            shift=alarms.get("shift", False),
            plus=alarms.get(SUMMED, False),
        )
        if follows_fusion and self.fused != was_fused:
            events.append(self._fused_event(sample.ts, shift))
        self.attribution_shares = self.attribution.update(
            score,
            shift,
            self.shift.last_z if self.shift is not None else None,
            good & state.out_of_control,
        )
        forecasts = {} if self.forecaster is None else self.forecaster.update(sample.ts, row)
        self.spc.observe_alarm(alarms["spc"])
        if self.vae is not None:
            self.vae.observe_alarm(alarms["vae"])
        if self.shift is not None:
            self.shift.observe_alarm(alarms["shift"])
        return LineResult(
            ts=sample.ts,
            readings=dict(self.latest),
            spc_states=spc_states,
            scores=scores,
            alarms=alarms,
            events=tuple(events),
            fused=self.fused,
            unjudged_rows=self.unjudged_rows,
            judged=self.judged,
            attribution=tuple(self.attribution_shares.tolist()),
            forecasts=forecasts,
        )

    @property
    def judged(self) -> bool:
        """Whether the detectors judged the line within the last window of rows."""
        return self.unjudged_rows <= self.judge_limit

    def _bridge(self, row: np.ndarray, good: np.ndarray) -> np.ndarray:
        """The detectors' row with a channel missing for at most BRIDGE_ROWS rows held."""
        self._missing = np.where(good, 0, self._missing + 1)
        self._last_good = np.where(good, row, self._last_good)
        hold = ~good & (self._missing <= BRIDGE_ROWS) & np.isfinite(self._last_good)
        if not hold.any():
            return row
        self.bridged += 1
        return np.where(hold, self._last_good, row)

    def _level(self, name: str, score: Score) -> Edge:
        alarm = self.alarms[name]
        assert isinstance(alarm, DebouncedAlarm)
        return alarm.level(score.value, score.threshold, self.clear_ratio)

    def retune(self, detection: DetectionConfig) -> None:
        """Take a reloaded `[detection]`'s alarm rules in place; active alarms stay active.

        Every score alarm of the line (the VAE's, the shift detector's, the summed score's)
        takes the same debounce and hysteresis."""
        self.raise_after, self.clear_after = detection.raise_after, detection.clear_after
        self.clear_ratio = detection.clear_ratio
        self.detection = detection
        for alarm in self.alarms.values():
            if isinstance(alarm, DebouncedAlarm):
                alarm.raise_after, alarm.clear_after = detection.raise_after, detection.clear_after
            else:
                alarm.retune(detection.spc_hits, detection.spc_span, detection.clear_after)

    @property
    def shift_active(self) -> bool:
        """Whether the shift detector's alarm holds (False without one)."""
        return "shift" in self.alarms and self.alarms["shift"].active

    def state(self) -> dict[str, object]:
        """Every running state of the line (detectors, alarms, fusion), JSON-able.

        The latest readings are not in it: after a restart they come from the PLCs again. The
        layout is the snapshot's (format 1, agent.runtime.snapshots), unchanged since it was
        first written, so an agent upgraded in place restores the state of the one before."""
        last = self.last_score
        vae = self.vae.state() if self.vae is not None else {"window": None, "smoothed": None}
        summed = self.alarms.get(SUMMED, self._score_alarm())
        return {
            "window": vae["window"],
            "spc": self.spc.state(),
            "spc_alarm": self.alarms["spc"].state(),
            "anomaly": self.alarms["vae"].state(),
            "fusion": {**self.fusion.state(), "plus": summed.state()},
            "shift": None if self.shift is None else self._shift_state(self.shift),
            "smoothed": vae["smoothed"],
            "fused": self.fused,
            "spc_states": dict(self._last_states),
            "last_score": None
            if last is None
            else [last.value, last.threshold, *last.contributions],
            # Added after format 1's first release: a snapshot without them restores as reset.
            "attribution": self.attribution.state(),
            "forecast": None if self.forecaster is None else self.forecaster.state(),
        }

    def _shift_state(self, shift: ShiftDetector) -> dict[str, object]:
        own = {k: v for k, v in shift.state().items() if k != "alarmed"}
        return {**own, **self.alarms["shift"].state()}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a saved `state()`; ValueError or KeyError if it does not fit this line
        (the monitor may then be half restored: restore a `state()` taken before to undo)."""
        if (state["shift"] is None) != (self.shift is None):
            raise ValueError("the saved state and this bundle differ in having a shift detector")
        if self.vae is not None:
            self.vae.restore({"window": state["window"], "smoothed": state["smoothed"]})
        self.spc.restore(state["spc"])
        self.alarms["spc"].restore(state["spc_alarm"])
        self.alarms["vae"].restore(state["anomaly"])
        fusion = state["fusion"]
        self.fusion.restore(fusion)
        plus = fusion["plus"]
        if not isinstance(plus, dict):
            raise ValueError("fusion state: 'plus' must be an alarm state")
        self.alarms.get(SUMMED, self._score_alarm()).restore(plus)
        if self.shift is not None:
            self.alarms["shift"].restore(state["shift"])
            self.shift.restore({**state["shift"], "alarmed": self.alarms["shift"].active})
        self.fused = bool(state["fused"])
        if set(state["spc_states"]) != set(self.channels):
            raise ValueError("the saved SPC states are of other channels")
        self._last_states = {c: str(state["spc_states"][c]) for c in self.channels}
        last = state["last_score"]
        if last is not None and len(last) != 2 + len(self.channels):
            raise ValueError("the saved last score has another number of channels")
        self.last_score = (
            None
            if last is None
            else Score(float(last[0]), float(last[1]), tuple(float(v) for v in last[2:]))
        )
        self.attribution.reset()
        if state.get("attribution") is not None:
            self.attribution.restore(state["attribution"])
        self.attribution_shares = self.attribution.shares
        if self.forecaster is not None:
            self.forecaster.reset()
            if state.get("forecast") is not None:
                self.forecaster.restore(state["forecast"])
