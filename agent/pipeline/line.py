"""The detection pipeline of one line: window, SPC, VAE, alarms. Pure and synchronous.

The live agent and offline replay (`lineside score`) feed the same `LineMonitor`, so what was
measured offline is what runs on the line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.config import DetectionConfig
from agent.core.window import SlidingWindow
from agent.pipeline.detectors.base import Detector
from agent.pipeline.detectors.shift import ShiftDetector
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.events.alarms import DebouncedAlarm, Edge, SustainedRuleAlarm
from agent.pipeline.events.fusion import LEGACY_FUSION, SHIFT_FUSIONS, Fusion
from agent.types import Event, EventKind, EventState, Quality, Sample, Score, TagReading

ANOMALY_SEVERITY = 700
SPC_SEVERITY = 500


@dataclass(frozen=True)
class LineResult:
    """What one sample did to the line: readings, per-channel SPC state, score, alarms."""

    ts: float
    readings: dict[str, TagReading]
    spc_states: dict[str, str]
    score: Score | None
    anomaly_active: bool
    spc_alarm_active: bool
    events: tuple[Event, ...]
    #: The line's fused decision (agent.pipeline.events.fusion); None: either alarm (the old rule).
    fused: bool | None = None
    #: The drift-tolerant shift detector's alarm and score (agent.pipeline.detectors.shift), if any.
    shift_alarm_active: bool = False
    shift_score: Score | None = None

    @property
    def alarm_active(self) -> bool:
        """The line's anomaly decision: the two alarms fused as the bundle or site says."""
        if self.fused is None:
            return self.anomaly_active or self.spc_alarm_active
        return self.fused


class LineMonitor:
    """Keeps the window and alarm state of one line and processes samples one at a time."""

    def __init__(
        self,
        line: str,
        channels: list[str],
        window: int,
        hop: int,
        vae: Detector | None,
        spc: SpcDetector,
        detection: DetectionConfig,
        clock: str | None = None,
        fusion: str = LEGACY_FUSION,
        smoothing: float = 1.0,
        shift: ShiftDetector | None = None,
    ) -> None:
        self.line = line
        self.channels = channels
        # Detection steps on samples of the clock source only; samples of other sources of the
        # line just refresh the latest values, so the window keeps one row per clock period.
        self.clock = clock
        self._last_states: dict[str, str] = {c: "no-data" for c in channels}
        self.vae = vae
        self.spc = spc
        self.window = SlidingWindow(window, len(channels), hop)
        self.anomaly = DebouncedAlarm(detection.raise_after, detection.clear_after)
        self.spc_alarm = SustainedRuleAlarm(
            len(channels), detection.spc_hits, detection.spc_span, detection.clear_after
        )
        self.clear_ratio = detection.clear_ratio
        # An SPC alarm counts as sustained once it has held for one window's length of rows.
        self.fusion = Fusion(
            fusion,
            sustain=window,
            raise_after=detection.raise_after,
            clear_after=detection.clear_after,
            clear_ratio=detection.clear_ratio,
        )
        self.shift = shift
        self.smoothing = smoothing
        self._smoothed: float | None = None
        self.fused = False
        self.latest: dict[str, TagReading] = {}
        self.last_score: Score | None = None

    def process(self, sample: Sample) -> LineResult:
        """Take one sample from any source of the line and return the line's new state."""
        self.latest.update(sample.readings)
        if self.clock is not None and sample.source != self.clock:
            return LineResult(
                ts=sample.ts,
                readings=dict(self.latest),
                spc_states=dict(self._last_states),
                score=None,
                anomaly_active=self.anomaly.active,
                spc_alarm_active=self.spc_alarm.active,
                events=(),
                fused=self.fused,
                shift_alarm_active=self.shift_active,
            )
        missing = TagReading(math.nan, Quality.BAD, "never read")
        readings = [self.latest.get(c, missing) for c in self.channels]
        good = np.array([r.quality is Quality.GOOD for r in readings])
        row = np.array([r.value if ok else math.nan for r, ok in zip(readings, good, strict=True)])
        events: list[Event] = []

        state = self.spc.update(row)
        spc_states = {
            c: SpcDetector.describe(state, i, bool(good[i])) for i, c in enumerate(self.channels)
        }
        self._last_states = spc_states
        edge = self.spc_alarm.update(good & state.out_of_control)
        if edge is not Edge.NONE:
            sustained = [
                c
                for c, s in zip(self.channels, self.spc_alarm.channels_sustained, strict=True)
                if s
            ]
            events.append(self._spc_event(sample.ts, edge, sustained, spc_states))

        shift_score = self.shift.update(row) if self.shift is not None else None
        # In a shift fusion the anomaly events follow the fused decision (AlarmActive), so an
        # alarm the shift detector carries is journaled and explained like one the VAE carries.
        follows_fusion = self.fusion.mode in SHIFT_FUSIONS
        score: Score | None = None
        if not good.all():
            self.window.reset()  # a gap: the next window starts fresh
            self._smoothed = None
        elif self.vae is not None:
            window = self.window.push(row)
            if window is not None:
                score = self._smooth(self.vae.score_one(window))
                self.last_score = score
                edge = self.anomaly.level(score.value, score.threshold, self.clear_ratio)
                if edge is not Edge.NONE and not follows_fusion:
                    events.append(self._anomaly_event(sample.ts, edge, score))

        was_fused = self.fused
        self.fused = self.fusion.update(
            self.anomaly.active,
            self.spc_alarm.active,
            shift=self.shift_active,
            vae_ratio=score.ratio if score is not None else None,
            shift_ratio=shift_score.ratio if shift_score is not None else None,
        )
        if follows_fusion and self.fused != was_fused:
            events.append(self._fused_event(sample.ts, shift_score))
        return LineResult(
            ts=sample.ts,
            readings=dict(self.latest),
            spc_states=spc_states,
            score=score,
            anomaly_active=self.anomaly.active,
            spc_alarm_active=self.spc_alarm.active,
            events=tuple(events),
            fused=self.fused,
            shift_alarm_active=self.shift_active,
            shift_score=shift_score,
        )

    def retune(self, detection: DetectionConfig) -> None:
        """Take a reloaded `[detection]`'s alarm rules in place; active alarms stay active.

        Every score alarm of the line (the VAE's, the summed vae-plus-shift score's, the shift
        detector's) takes the same debounce and hysteresis."""
        self.anomaly.raise_after = detection.raise_after
        self.anomaly.clear_after = detection.clear_after
        self.clear_ratio = detection.clear_ratio
        self.fusion.retune(detection.raise_after, detection.clear_after, detection.clear_ratio)
        if self.shift is not None:
            self.shift.retune(detection.raise_after, detection.clear_after, detection.clear_ratio)
        self.spc_alarm.retune(detection.spc_hits, detection.spc_span, detection.clear_after)

    @property
    def shift_active(self) -> bool:
        """Whether the shift detector's alarm holds (False without one)."""
        return self.shift is not None and self.shift.active

    def state(self) -> dict[str, object]:
        """Every running state of the line (window, charts, alarms, fusion), JSON-able.

        The latest readings are not in it: after a restart they come from the PLCs again."""
        last = self.last_score
        return {
            "window": self.window.state(),
            "spc": self.spc.state(),
            "spc_alarm": self.spc_alarm.state(),
            "anomaly": self.anomaly.state(),
            "fusion": self.fusion.state(),
            "shift": self.shift.state() if self.shift is not None else None,
            "smoothed": self._smoothed,
            "fused": self.fused,
            "spc_states": dict(self._last_states),
            "last_score": None
            if last is None
            else [last.value, last.threshold, *last.contributions],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a saved `state()`; ValueError or KeyError if it does not fit this line
        (the monitor may then be half restored: restore a `state()` taken before to undo)."""
        if (state["shift"] is None) != (self.shift is None):
            raise ValueError("the saved state and this bundle differ in having a shift detector")
        self.window.restore(state["window"])
        self.spc.restore(state["spc"])
        self.spc_alarm.restore(state["spc_alarm"])
        self.anomaly.restore(state["anomaly"])
        self.fusion.restore(state["fusion"])
        if self.shift is not None:
            self.shift.restore(state["shift"])
        smoothed = state["smoothed"]
        self._smoothed = None if smoothed is None else float(smoothed)
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

    def _fused_event(self, ts: float, shift: Score | None) -> Event:
        """The fused decision's edge, told with the detector nearer its threshold (its top tag,
        its score) and both scores against their thresholds in the message."""
        raised = self.fused
        vae = self.last_score
        ratio = {
            "vae": vae.ratio if vae is not None else 0.0,
            "shift": shift.ratio if shift is not None else 0.0,
        }
        lead = "vae" if ratio["vae"] >= ratio["shift"] else "shift"
        score = vae if lead == "vae" else shift
        if score is None:
            score = Score(0.0, 1.0, (0.0,) * len(self.channels))
        top, share = self._top_tags(score)
        seen = f"VAE {ratio['vae']:.2f}, shift {ratio['shift']:.2f} of their thresholds"
        message = (
            f"Anomaly on line {self.line} ({self.fusion.mode}): {seen}, most unusual tag {top}"
            if raised
            else f"Anomaly on line {self.line} cleared ({self.fusion.mode}): {seen}"
        )
        details = {"top_contributions": share, "fusion": self.fusion.mode, "ratios": ratio}
        return self._anomaly(ts, raised, lead, message, top, score, details)

    def _smooth(self, score: Score) -> Score:
        """The EWMA of the window scores (weight `smoothing` on the newest), thresholded
        in place of the raw score: SKAB's faults are long, a one-window spike is not one."""
        if self.smoothing >= 1.0:
            return score
        prev = self._smoothed
        value = score.value if prev is None else prev + self.smoothing * (score.value - prev)
        self._smoothed = value
        return Score(value=value, threshold=score.threshold, contributions=score.contributions)

    def _top_tags(self, score: Score) -> tuple[str, dict[str, float]]:
        """The most unusual tag and the top three tags' shares of `score`."""
        order = sorted(
            range(len(self.channels)), key=lambda i: score.contributions[i], reverse=True
        )
        share = {self.channels[i]: round(score.contributions[i], 6) for i in order[:3]}
        return self.channels[order[0]], share

    def _anomaly_event(self, ts: float, edge: Edge, score: Score) -> Event:
        top, share = self._top_tags(score)
        raised = edge is Edge.RAISED
        message = (
            f"Anomaly on line {self.line}: score {score.value:.3g} above {score.threshold:.3g}, "
            f"most unusual tag {top}"
            if raised
            else f"Anomaly on line {self.line} cleared: score {score.value:.3g}"
        )
        return self._anomaly(ts, raised, "vae", message, top, score, {"top_contributions": share})

    def _anomaly(
        self,
        ts: float,
        raised: bool,
        detector: str,
        message: str,
        tag: str,
        score: Score,
        details: dict[str, Any],
    ) -> Event:
        """An anomaly alarm's edge, the VAE's own or the fused decision's."""
        return Event(
            ts=ts,
            line=self.line,
            kind=EventKind.ANOMALY,
            state=EventState.RAISED if raised else EventState.CLEARED,
            detector=detector,
            severity=ANOMALY_SEVERITY,
            message=message,
            tag=tag,
            score=score.value,
            threshold=score.threshold,
            details=details,
        )

    def _spc_event(self, ts: float, edge: Edge, broken: list[str], states: dict[str, str]) -> Event:
        raised = edge is Edge.RAISED
        rules = {c: states[c] for c in broken}
        message = (
            f"SPC alarm on line {self.line}: "
            + ", ".join(f"{c} {rule}" for c, rule in rules.items())
            if raised
            else f"SPC alarm on line {self.line} cleared"
        )
        return Event(
            ts=ts,
            line=self.line,
            kind=EventKind.SPC,
            state=EventState.RAISED if raised else EventState.CLEARED,
            detector="spc",
            severity=SPC_SEVERITY,
            message=message,
            tag=broken[0] if broken else "",
            details={"rules": rules},
        )
