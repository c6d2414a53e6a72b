"""The alarm edges of a line as `Event`s: who raised them, which tag, and the message. Pure.

`AlarmEvents` is the part of `LineMonitor` (agent.pipeline.line) that words its events; the
tag an anomaly or SPC event names is the fused attribution's (agent.pipeline.attribution), and
its top three tags go in the event's details (`attribution`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.pipeline.attribution import ranked
from agent.pipeline.detectors.vae import VaeDetector
from agent.pipeline.events.alarms import Edge
from agent.pipeline.events.fusion import Fusion
from agent.types import Event, EventKind, EventState, Score

ANOMALY_SEVERITY = 700
SPC_SEVERITY = 500


class AlarmEvents:
    """Events for the alarm edges of a line (mixed into LineMonitor)."""

    line: str
    channels: list[str]
    fusion: Fusion
    fused: bool
    vae: VaeDetector | None
    last_score: Score | None
    attribution_shares: np.ndarray

    def _attributed(self) -> list[tuple[str, float]]:
        """The top tags of the fused attribution (empty while it has no evidence)."""
        if not self.attribution_shares.any():
            return []
        return ranked(self.channels, self.attribution_shares)

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
        seen = (
            f"VAE {ratio['vae']:.2f}, shift {ratio['shift']:.2f} of their thresholds"
            if self.vae is not None
            else f"shift {ratio['shift']:.2f} of its threshold (limits learnt on the device)"
        )
        message = (
            f"Anomaly on line {self.line} ({self.fusion.mode}): {seen}, most unusual tag {top}"
            if raised
            else f"Anomaly on line {self.line} cleared ({self.fusion.mode}): {seen}"
        )
        details = {"top_contributions": share, "fusion": self.fusion.mode, "ratios": ratio}
        return self._anomaly(ts, raised, lead, message, top, score, details)

    def _top_tags(self, score: Score) -> tuple[str, dict[str, float]]:
        """The most likely tag (the fused attribution's, else the top of `score`) and the top
        three tags' shares of `score`."""
        order = sorted(
            range(len(self.channels)), key=lambda i: score.contributions[i], reverse=True
        )
        share = {self.channels[i]: round(score.contributions[i], 6) for i in order[:3]}
        attributed = self._attributed()
        return (attributed[0][0] if attributed else self.channels[order[0]]), share

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
        attributed = self._attributed()
        if attributed:
            details = {**details, "attribution": dict(attributed)}
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
        share = dict(zip(self.channels, self.attribution_shares.tolist(), strict=True))
        broken = sorted(broken, key=lambda c: -share[c])  # the most likely broken tag first
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
            details={"rules": rules, "attribution": dict(self._attributed())},
        )
