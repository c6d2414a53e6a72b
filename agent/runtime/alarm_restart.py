"""Alarms across a restart: the restored detector state agrees with the journal's last edges.

A snapshot is written on every alarm edge and on a timer, but a kill -9 can still land between
an edge and its snapshot, or between an edge and its journal commit, and a snapshot may be
refused (too old, another model). At start the agent therefore settles every alarm the
journal holds open (its last edge is a raise) against the alarm the restored detectors hold:

    journal open X, detectors active     adopted: X is the open alarm (SCADA's condition is
                                         active again under EventId X; its clear closes X)
    journal open X, detectors inactive   closed: a clear of X is journaled and sent to SCADA,
                                         saying it was cleared at the restart and why
    journal closed, detectors active     the detectors' alarm is forgotten: if the fault is
                                         still there it raises again, a new pair of edges
    comms (a PLC device down)            closed: a link's state is measured afresh; a PLC
                                         still down raises again once `timeout_s` has passed

So every raise in the journal has exactly one clear, however often the agent is killed, and
no raise is sent to SCADA twice under different EventIds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from agent.pipeline.line import LineMonitor
from agent.types import Event, EventKind, EventState

log = logging.getLogger(__name__)


@dataclass
class Settled:
    """What the restart makes of the alarms: open ones adopted, journaled ones to close, and
    the kinds whose restored detector alarm was forgotten."""

    adopted: list[Event] = field(default_factory=list)
    closed: list[Event] = field(default_factory=list)
    forgotten: list[EventKind] = field(default_factory=list)


def closing_edge(raised: Event, why: str, now: float) -> Event:
    """The clear of a journaled raise that nothing running holds any more."""
    return Event(
        ts=now,
        line=raised.line,
        kind=raised.kind,
        state=EventState.CLEARED,
        detector=raised.detector,
        severity=raised.severity,
        message=f"{raised.message}: cleared at restart ({why})",
        tag=raised.tag,
        details={**raised.details, "raise_event_id": raised.event_id, "restart": why},
    )


def settle(
    monitor: LineMonitor | None,
    journal_open: list[Event],
    restored: bool,
    now: float | None = None,
) -> Settled:
    """Settle the journal's open alarms against `monitor` (None: a line still learning)."""
    now = time.time() if now is None else now
    active = monitor.active_kinds() if monitor is not None else {}
    settled = Settled()
    open_kinds = set()
    for raised in journal_open:
        if raised.kind is EventKind.COMMS:
            why = "the agent restarted; the PLC link is measured again"
            settled.closed.append(closing_edge(raised, why, now))
            continue
        open_kinds.add(raised.kind)
        if active.get(raised.kind, False):
            settled.adopted.append(raised)
            continue
        why = (
            "the restored detector state has no such alarm"
            if restored
            else "the detector state of the last run was not restored"
        )
        settled.closed.append(closing_edge(raised, why, now))
    if monitor is not None:
        for kind, holds in active.items():
            if holds and kind not in open_kinds:
                monitor.close_alarm(kind)
                settled.forgotten.append(kind)
    for event in settled.closed:
        log.warning("alarm %s of line %s closed: %s", event.details["raise_event_id"],
                    event.line, event.details["restart"])  # fmt: skip
    for kind in settled.forgotten:
        log.warning(
            "restored %s alarm forgotten: the journal has it cleared; it raises again if the "
            "fault is still there",
            kind.value,
        )
    return settled
