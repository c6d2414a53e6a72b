"""Settling the journal's open alarms against the restored detectors at a restart
(agent.runtime.alarm_restart): adopted, closed, or forgotten, never duplicated."""

from __future__ import annotations

import math

import numpy as np

from agent.config import DetectionConfig
from agent.core.spc import ImrLimits
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.line import LineMonitor
from agent.runtime.alarm_restart import settle
from agent.types import Event, EventKind, EventState, Sample, TagReading

CHANNELS = ["speed", "temp"]


def monitor() -> LineMonitor:
    limits = ImrLimits(np.array([100.0, 50.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    return LineMonitor("l1", CHANNELS, None, SpcDetector(limits), DetectionConfig(), clock="a")


def with_spc_alarm() -> LineMonitor:
    line = monitor()
    for t in range(10):  # far outside the limits: the SPC rule alarm raises
        line.process(Sample(float(t), "a", {"speed": TagReading(150.0), "temp": TagReading(50.0)}))
    assert line.active_kinds()[EventKind.SPC]
    return line


def raised(kind: EventKind, **details: object) -> Event:
    return Event(
        ts=1.0, line="l1", kind=kind, state=EventState.RAISED, detector=kind.value,
        severity=500, message=f"{kind.value} raised", details=dict(details),
    )  # fmt: skip


def test_an_alarm_both_hold_is_adopted_under_its_journal_id() -> None:
    line = with_spc_alarm()
    journaled = raised(EventKind.SPC)
    settled = settle(line, [journaled], restored=True, now=100.0)
    assert settled.adopted == [journaled] and not settled.closed and not settled.forgotten
    assert line.active_kinds()[EventKind.SPC]


def test_a_journaled_raise_the_detectors_do_not_hold_is_closed_once() -> None:
    journaled = raised(EventKind.ANOMALY)
    settled = settle(monitor(), [journaled], restored=False, now=100.0)
    (clear,) = settled.closed
    assert clear.state is EventState.CLEARED and clear.kind is EventKind.ANOMALY
    assert clear.details["raise_event_id"] == journaled.event_id
    assert "not restored" in clear.details["restart"] and clear.ts == 100.0
    assert clear.event_id != journaled.event_id and not settled.adopted


def test_a_restored_alarm_the_journal_has_cleared_is_forgotten_and_raises_anew() -> None:
    line = with_spc_alarm()
    settled = settle(line, [], restored=True, now=100.0)
    assert settled.forgotten == [EventKind.SPC] and not line.active_kinds()[EventKind.SPC]
    events = []
    for t in range(10):
        row = {"speed": TagReading(150.0), "temp": TagReading(50.0)}
        events += line.process(Sample(200.0 + t, "a", row)).events
    assert [e.state for e in events] == [EventState.RAISED]  # a new alarm, its own edges


def test_comms_alarms_are_closed_and_a_learning_line_closes_everything() -> None:
    down = raised(EventKind.COMMS, plc="press", device="main")
    anomaly = raised(EventKind.ANOMALY)
    settled = settle(None, [down, anomaly], restored=False, now=5.0)
    assert {e.details["raise_event_id"] for e in settled.closed} == {
        down.event_id,
        anomaly.event_id,
    }
    comms = next(e for e in settled.closed if e.kind is EventKind.COMMS)
    assert comms.details["plc"] == "press" and comms.details["device"] == "main"
    assert not math.isnan(comms.ts)
