"""The demo's live terminal view: values, SPC states, score bar and alarms.

On a terminal it redraws in place a few times a second; otherwise (a pipe, CI) it prints a
status line every 30 line seconds and a line per alarm edge.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, TextIO

from agent.pipeline.line import LineResult

if TYPE_CHECKING:
    from agent.demo.schedule import FaultRecord
    from agent.runtime.app import Agent

_CLEAR = "\x1b[H\x1b[2J"
_RED, _GREEN, _DIM, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[2m", "\x1b[0m"


class LiveView:
    """Draws the newest line result; `update` is cheap, drawing happens in `run`."""

    def __init__(self, out: TextIO, line: str, interactive: bool) -> None:
        self.out = out
        self.line = line
        self.interactive = interactive
        self._t = 0.0
        self._result: LineResult | None = None
        self._fault: FaultRecord | None = None
        self._agent: Agent | None = None
        self._events: deque[str] = deque(maxlen=6)
        self._next_status = 0.0

    def update(self, t: float, result: LineResult, fault: FaultRecord | None, agent: Agent) -> None:
        """Record the newest result (called from the detection loop; never blocks)."""
        self._t, self._result, self._fault, self._agent = t, result, fault, agent
        for event in result.events:
            text = f"{t:7.1f}s  {event.state.value:<7} {event.detector:<3}  {event.message}"
            self._events.append(text)
            if not self.interactive:
                print(text, file=self.out, flush=True)
        if not self.interactive and t >= self._next_status:
            self._next_status = t + 30.0
            print(self._status_line(), file=self.out, flush=True)

    def _status_line(self) -> str:
        r = self._result
        score = "-" if r is None or r.score is None else f"{r.score.value:.3f}"
        fault = self._fault.planned.text if self._fault else "none"
        alarm = "ALARM" if r is not None and r.alarm_active else "ok"
        return f"{self._t:7.1f}s  score {score:>7}  {alarm:<5}  fault: {fault}"

    def _frame(self) -> str:
        r = self._result
        if r is None:
            return _CLEAR + "waiting for the first sample...\n"
        lines = [
            _CLEAR + f"Lineside demo, line {self.line}, t = {self._t:6.1f} line seconds",
            f"injected fault: {self._fault.planned.text if self._fault else 'none'}",
            "",
            f"{'tag':<20} {'value':>10}  {'SPC':<18} contribution",
        ]
        contributions = (
            dict(zip(r.spc_states, r.score.contributions, strict=True))
            if (r.score is not None)
            else {}
        )
        for name, reading in r.readings.items():
            state = r.spc_states.get(name, "")
            colour = _GREEN if state == "in-control" else (_RED if state else _DIM)
            share = contributions.get(name)
            # 20 characters = the threshold: a bar past it is what raises the anomaly alarm
            bar = (
                ""
                if share is None or r.score is None
                else "#" * min(30, int(20 * share / r.score.threshold))
            )
            lines.append(f"{name:<20} {reading.value:>10.3f}  {colour}{state:<18}{_RESET} {bar}")
        if r.score is not None:
            fill = min(40, int(40 * r.score.value / (2 * r.score.threshold)))
            lines.append("")
            lines.append(
                f"anomaly score {r.score.value:8.4f} / threshold {r.score.threshold:.4f} "
                f"[{'#' * fill:<40}]"
            )
        flag = f"{_RED}ALARM{_RESET}" if r.alarm_active else f"{_GREEN}normal{_RESET}"
        lines.append(f"alarm: {flag}   anomaly={r.anomaly_active} spc={r.spc_alarm_active}")
        if self._agent is not None:
            c = self._agent.scada.counters
            lines.append(
                f"{_DIM}loop {c.loop_latency_ms:.2f} ms, samples {c.samples_processed}, "
                f"drops {c.sample_queue_drops}{_RESET}"
            )
        lines += ["", "recent alarm edges:", *self._events]
        return "\n".join(lines) + "\n"

    async def run(self) -> None:
        """Redraw until cancelled (only on a terminal)."""
        if not self.interactive:
            return
        while True:
            self.out.write(self._frame())
            self.out.flush()
            await asyncio.sleep(0.25)

    def close(self) -> None:
        """Leave the last frame on screen."""
        if self.interactive:
            self.out.write(self._frame())
            self.out.flush()
