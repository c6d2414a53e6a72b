"""What one sample did to a line: `LineResult`, the pipeline's output to every sink. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.core.forecast import Forecast
from agent.types import Event, Score, TagReading


@dataclass(frozen=True)
class LineResult:
    """What one sample did to the line: readings, per-channel SPC state, every detector's score
    on this row (none on a row of another source, or when a detector had no verdict), every
    alarm of the table after it, the fused decision and the alarm edges."""

    ts: float
    readings: dict[str, TagReading]
    spc_states: dict[str, str]
    scores: dict[str, Score]
    alarms: dict[str, bool]
    events: tuple[Event, ...]
    #: The line's fused decision (agent.pipeline.events.fusion); None: either alarm (the old rule).
    fused: bool | None = None
    #: Rows since the detectors last judged the line (the VAE scored a window; on a line without
    #: one, a row with every channel good); past one window the alarm flags are not a verdict.
    unjudged_rows: int = 0
    judged: bool = True
    #: The fused tag attribution (agent.pipeline.attribution), a share per channel, most likely
    #: tag highest; None on a row of another source.
    attribution: tuple[float, ...] | None = None
    #: The drift forecasts of the tags that drift (agent.core.forecast), by tag.
    forecasts: dict[str, Forecast] = field(default_factory=dict)

    @property
    def score(self) -> Score | None:
        """The VAE's score on this row, if it scored one."""
        return self.scores.get("vae")

    @property
    def shift_score(self) -> Score | None:
        """The shift detector's score on this row, if the line has one."""
        return self.scores.get("shift")

    @property
    def anomaly_active(self) -> bool:
        """Whether the VAE's alarm holds."""
        return self.alarms.get("vae", False)

    @property
    def spc_alarm_active(self) -> bool:
        """Whether the SPC rule alarm holds."""
        return self.alarms.get("spc", False)

    @property
    def shift_alarm_active(self) -> bool:
        """Whether the shift detector's alarm holds (False without one)."""
        return self.alarms.get("shift", False)

    @property
    def alarm_active(self) -> bool:
        """The line's anomaly decision: the alarms fused as the bundle or site says."""
        if self.fused is None:
            return self.anomaly_active or self.spc_alarm_active
        return self.fused
