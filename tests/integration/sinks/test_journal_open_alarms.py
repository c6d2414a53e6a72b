"""The journal's open alarms, read from a real SQLite journal (agent.sinks.journal)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.sinks.journal import Journal, open_alarm_edges
from agent.types import Event, EventKind, EventState


def edge(kind: EventKind, state: EventState, ts: float, **details: object) -> Event:
    return Event(
        ts=ts, line="l1", kind=kind, state=state, detector=kind.value, severity=500,
        message=f"{kind.value} {state.value}", details=dict(details),
    )  # fmt: skip


async def journal_of(path: Path, events: list[Event]) -> None:
    journal = Journal(path, line="l1")
    assert await journal.open()
    task = asyncio.create_task(journal.run())
    for event in events:
        journal.send(event)
    await journal.aclose()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_last_edge_per_alarm_decides_what_is_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    assert open_alarm_edges(path, "l1") == []  # no journal yet
    spc_up = edge(EventKind.SPC, EventState.RAISED, 1.0)
    anomaly_up = edge(EventKind.ANOMALY, EventState.RAISED, 3.0)
    press_down = edge(EventKind.COMMS, EventState.RAISED, 4.0, plc="press", device="a")
    await journal_of(
        path,
        [
            spc_up,
            edge(EventKind.SPC, EventState.CLEARED, 2.0),
            anomaly_up,
            press_down,
            edge(EventKind.COMMS, EventState.RAISED, 4.5, plc="press", device="b"),
            edge(EventKind.COMMS, EventState.CLEARED, 5.0, plc="press", device="b"),
        ],
    )
    open_now = open_alarm_edges(path, "l1")
    assert {e.event_id for e in open_now} == {anomaly_up.event_id, press_down.event_id}
    got = next(e for e in open_now if e.kind is EventKind.ANOMALY)
    assert (got.ts, got.message, got.state) == (3.0, "anomaly raised", EventState.RAISED)
    assert open_alarm_edges(path, "other-line") == []
