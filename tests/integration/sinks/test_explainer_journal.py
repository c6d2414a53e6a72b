"""Similar past events come from the real SQLite journal, with the operator's ack note."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.explain.facts import build_facts
from agent.explain.template import render
from agent.sinks.explainer import past_events
from agent.sinks.journal import Journal
from agent.types import Event, EventKind, EventState
from tests.explain_helpers import CHANNELS, context, demo_catalogue, pressure_snapshot


def anomaly(ts: float, contributions: dict[str, float], **details: str) -> Event:
    return Event(
        ts=ts, line="extruder-1", kind=EventKind.ANOMALY, state=EventState.RAISED,
        detector="vae", severity=700, message="old anomaly", tag="melt_pressure",
        details={"top_contributions": contributions, **details},
    )  # fmt: skip


async def test_past_events_from_the_journal_with_the_operators_note(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    journal = Journal(path)
    await journal.open()
    alike = anomaly(10.0, {"melt_pressure": 11.0, "throughput": 3.5})
    other = anomaly(20.0, {"vibration_rms": 9.0})
    journal.send(alike)
    journal.send(other)
    # How the operator resolved it, as an Acknowledge in SCADA journals it (ref = the alarm).
    journal.record_ack(alike.event_id, "otto", "changed the screen")
    journal.send(
        dataclasses.replace(anomaly(30.0, {"melt_pressure": 5.0}), state=EventState.CLEARED)
    )
    await journal.aclose()

    snap = pressure_snapshot()
    past = past_events(path, exclude=snap.event.event_id)
    assert {p.event_id for p in past} == {alike.event_id, other.event_id}  # raised ones only
    assert next(p for p in past if p.event_id == alike.event_id).note == "changed the screen"
    catalogue = demo_catalogue()
    facts = build_facts(snap, context(), catalogue, past)
    assert [s.event_id for s in facts.similar] == [alike.event_id]
    assert facts.similar[0].note == "changed the screen"
    assert set(CHANNELS) >= set(alike.details["top_contributions"])
    assert past_events(tmp_path / "missing.sqlite", exclude="") == []
    text = render(facts, "en")
    assert "clogged screen pack" in text
    assert "A similar past event was resolved with: changed the screen." in text
