"""What the explanation of an alarm is built from, kept row by row. Pure and synchronous.

`Evidence.observe` takes every `LineResult` of the line: it keeps the last `history` rows with
their times, the SPC state of each tag over the last `rule_memory` rows, the VAE's latest
contributions, the fused tag attribution and the drift forecasts; on a raised alarm edge it
returns one `Snapshot` per event, which agent.explain.facts turns into the facts. The live
explainer (agent.sinks.explainer) and the fault benchmark (benchmarks/faults.py) share it, so
the benchmark scores the facts the operator is shown.
"""

from __future__ import annotations

import collections

import numpy as np
import numpy.typing as npt

from agent.core.forecast import Forecast
from agent.explain.facts import Snapshot
from agent.pipeline.line import LineResult
from agent.types import EventState

FloatArray = npt.NDArray[np.float64]
HISTORY = 64  # rows kept for directions and correlations
RULE_MEMORY = 16  # SPC states this recent count as "rules violated"
QUIET = ("in-control", "no-data")


class Evidence:
    """The recent rows, rules, contributions, attribution and forecasts of one line."""

    def __init__(
        self, channels: tuple[str, ...], history: int = HISTORY, rule_memory: int = RULE_MEMORY
    ) -> None:
        self.channels = channels
        self._rows: collections.deque[FloatArray] = collections.deque(maxlen=history)
        self._ts: collections.deque[float] = collections.deque(maxlen=history)
        self._states: collections.deque[dict[str, str]] = collections.deque(maxlen=rule_memory)
        self._contrib: tuple[float, ...] | None = None
        self._attribution: tuple[float, ...] | None = None
        self._forecasts: dict[str, Forecast] = {}
        self._blank = np.full(len(channels), np.nan)

    def observe(self, result: LineResult, explain: bool = True) -> list[Snapshot]:
        """Remember one result; a snapshot for each alarm it raises (none if not `explain`)."""
        row = self._blank.copy()
        for i, name in enumerate(self.channels):
            reading = result.readings.get(name)
            if reading is not None:
                row[i] = reading.value
        self._rows.append(row)
        self._ts.append(result.ts)
        self._states.append(result.spc_states)
        if result.score is not None:
            self._contrib = result.score.contributions
        if result.attribution is not None:
            self._attribution = result.attribution
            self._forecasts = dict(result.forecasts)
        raised = [e for e in result.events if e.state is EventState.RAISED]
        if not raised or not explain:
            return []
        rules: dict[str, set[str]] = {}
        for states in self._states:
            for tag, state in states.items():
                if state not in QUIET:
                    rules.setdefault(tag, set()).add(state)
        return [
            Snapshot(
                event=event,
                ts=np.array(self._ts),
                rows=np.vstack(self._rows),
                contributions=self._contrib,
                rules={t: tuple(sorted(r)) for t, r in rules.items()},
                attribution=self._attribution,
                forecasts=dict(self._forecasts),
            )
            for event in raised
        ]
