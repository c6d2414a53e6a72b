"""What the status page shows, kept up to date by the agent and read by the page's server.

The detection loop hands every `LineResult` to `LineBoard.observe`: a few dict writes and
deque appends (O(tags), no I/O, no lock, no JSON), so a page open in five browsers costs the
loop nothing more than a page open in none. The server turns the board into JSON when a
browser asks (`StatusBoard.view`), on the same event loop, between two samples.

A board holds one `LineBoard` per line of the agent (`StatusBoard.lines`); a second line is one
more entry, and the page draws each the same way.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.bundles.manifest import Manifest
from agent.pipeline.line import LineResult
from agent.types import Event, EventKind, EventState

HISTORY_POINTS = 300  # points of each live chart: five minutes at 1 Hz


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass
class TagLimits:
    """The SPC centre and limits a tag's live chart is drawn against."""

    center: float
    lcl: float
    ucl: float


@dataclass
class LineBoard:
    """One line's latest state, its open alarms and the recent points of its charts."""

    line: str
    channels: list[str]
    units: dict[str, str] = field(default_factory=dict)
    limits: dict[str, TagLimits] = field(default_factory=dict)
    updated: float = 0.0
    readings: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    spc_states: dict[str, str] = field(default_factory=dict)
    score: float | None = None
    threshold: float | None = None
    alarm: bool = False
    alarms: dict[str, bool] = field(default_factory=dict)
    open_alarms: dict[str, dict[str, Any]] = field(default_factory=dict)
    explanations: dict[str, str] = field(default_factory=dict)
    times: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    scores: deque[float | None] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    traces: dict[str, deque[float | None]] = field(default_factory=dict)
    #: The line's own model (version, probation status), when the agent tells it.
    model: Callable[[], dict[str, Any]] | None = None

    def observe(self, result: LineResult) -> None:
        """Detection-loop listener: keep the newest state; never blocks, never raises."""
        self.updated = time.time()
        for name, reading in result.readings.items():
            self.readings[name] = (reading.value, reading.quality.value, reading.reason)
        self.spc_states = result.spc_states
        self.alarms = result.alarms
        self.alarm = result.alarm_active
        score = result.score
        if score is not None:
            self.score, self.threshold = score.value, score.threshold
        self.times.append(self.updated)
        self.scores.append(score.value if score is not None else None)
        for name in self.channels:
            latest = result.readings.get(name)
            trace = self.traces.get(name)
            if trace is None:
                trace = self.traces[name] = deque(maxlen=HISTORY_POINTS)
            trace.append(latest.value if latest is not None else None)
        for event in result.events:
            self.on_event(event)

    def on_event(self, event: Event) -> None:
        """An alarm edge (of the loop, or a PLC link's): open or close it on the board."""
        key = (
            f"{event.kind.value}:{event.tag}" if event.kind is EventKind.COMMS else event.kind.value
        )
        if event.state is EventState.RAISED:
            self.open_alarms[key] = {
                "id": event.event_id, "kind": event.kind.value, "detector": event.detector,
                "since": event.ts, "tag": event.tag, "message": event.message,
                "score": _number(event.score), "threshold": _number(event.threshold),
            }  # fmt: skip
        else:
            closed = self.open_alarms.pop(key, None)
            if closed is not None:
                self.explanations.pop(closed["id"], None)

    def explained(self, event_id: str, text: str) -> None:
        """The explainer's text for an alarm (kept while the alarm is open)."""
        if any(a["id"] == event_id for a in self.open_alarms.values()):
            self.explanations[event_id] = text

    def view(self) -> dict[str, Any]:
        """The JSON-able state of the line for the page."""
        tags = []
        for name in self.channels:
            value, quality, reason = self.readings.get(name, (math.nan, "no-data", ""))
            limits = self.limits.get(name)
            tags.append({
                "name": name, "unit": self.units.get(name, ""), "value": _number(value),
                "quality": quality, "reason": reason,
                "spc": self.spc_states.get(name, ""),
                "limits": None if limits is None else vars(limits),
                "trace": [_number(v) for v in self.traces.get(name, ())],
            })  # fmt: skip
        alarms = [
            {**a, "explanation": self.explanations.get(a["id"], "")}
            for a in self.open_alarms.values()
        ]
        return {
            "line": self.line,
            "model": self.model() if self.model is not None else None,
            "updated": self.updated,
            "score": _number(self.score),
            "threshold": _number(self.threshold),
            "alarm": self.alarm,
            "alarms": {k: bool(v) for k, v in self.alarms.items()},
            "open_alarms": alarms,
            "times": list(self.times),
            "scores": [_number(v) for v in self.scores],
            "tags": tags,
        }


@dataclass
class StatusBoard:
    """Every line of the agent, and what the agent itself reports (model, PLC links)."""

    lines: dict[str, LineBoard]
    model: Callable[[], dict[str, Any]] = dict
    plcs: Callable[[], list[dict[str, Any]]] = list

    def view(self) -> dict[str, Any]:
        """The JSON-able state of the agent and each of its lines."""
        return {
            "now": time.time(),
            "model": self.model(),
            "plcs": self.plcs(),
            "lines": [board.view() for board in self.lines.values()],
        }


def line_board(line: str, channels: list[str], manifest: Manifest | None) -> LineBoard:
    """A line's board, with units and SPC limits from the bundle's manifest when it has one."""
    board = LineBoard(line, list(channels))
    if manifest is not None:
        refresh_limits(board, manifest)
    return board


def refresh_limits(board: LineBoard, manifest: Manifest) -> None:
    """Units and SPC limits of the model the line runs now (after a hot swap too)."""
    spc = manifest.spc
    for i, channel in enumerate(manifest.channels):
        board.units[channel.name] = channel.unit
        half = spc.nsigmas * float(spc.sigma[i])
        centre = float(spc.center[i])
        board.limits[channel.name] = TagLimits(centre, centre - half, centre + half)
