"""Comms status as data: when a PLC link goes down and comes back, and what SCADA shows of it.

A link is what one poll reads: a device (unit) of a Modbus connection, or an OPC-UA
connection. Its source feeds every poll's outcome in (`answered`, `failed`); this module only
keeps time and counts, so the same edges come live and in a test without a network.

- An outage starts with the first failed poll (at the time that poll started). The link is
  `connecting` until the outage has lasted `timeout_s` (the connection's own timeout): the first
  failed poll at least that long after the start makes it `down` and gives one RAISED edge.
  A single glitch that the next poll gets over never alarms.
- The first good poll after that gives one CLEARED edge with the outage's duration.
- A Modbus exception answer (illegal data address, busy, ...) counts as a failed poll here,
  though the hub's backoff treats it as an answer: the tags it should have read are lost.

`PlcStatus` is one connection's links, with what `Plcs/<name>/` publishes (state, last error,
last good poll, counters); it hands every edge to `on_edge`, which the agent sets.

>>> link = LinkStatus("press-1", "", 1, "10.0.0.5:502", timeout_s=1.0)
>>> plc = PlcStatus("press-1", [link])
>>> edges = []
>>> plc.on_edge = edges.append
>>> plc.failed(link, "[Errno 111] Connection refused", started=100.0, now=100.0)
>>> plc.state, edges
('connecting', [])
>>> plc.failed(link, "[Errno 111] Connection refused", started=101.0, now=101.0)
>>> plc.state, edges[0].message
('down', 'PLC press-1 unit 1 (10.0.0.5:502) not answering: [Errno 111] Connection refused')
>>> plc.failed(link, "[Errno 111] Connection refused", started=102.0, now=102.0)
>>> plc.answered(link, now=104.5)
>>> len(edges), edges[1].duration_s, plc.state
(2, 4.5, 'ok')
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.types import Event, EventKind, EventState

#: OPC-UA Severity of a comms alarm: between SPC (500) and anomaly (700); the line is blind.
COMMS_SEVERITY = 600


class LinkState(enum.Enum):
    """What SCADA reads in Plcs/<name>/State."""

    CONNECTING = "connecting"  # no answer yet, or failing for less than the timeout
    OK = "ok"
    DOWN = "down"  # failing for longer than the timeout: a comms alarm is raised


@dataclass(frozen=True)
class CommsEdge:
    """A link going down (`raised`) or answering again, with what the event says."""

    raised: bool
    ts: float
    since: float  # when the outage started
    plc: str
    device: str
    unit: int | None
    endpoint: str
    error: str  # the error that raised it (on a clear: the last one seen)

    @property
    def duration_s(self) -> float:
        """How long the link had been failing at this edge."""
        return round(self.ts - self.since, 3)

    @property
    def who(self) -> str:
        """The link in words: `PLC press-1 unit 1 (10.0.0.5:502)`."""
        unit = f" unit {self.unit}" if self.unit is not None else ""
        return f"PLC {self.plc}{unit} ({self.endpoint})"

    @property
    def message(self) -> str:
        """The event's one-line text."""
        if self.raised:
            return f"{self.who} not answering: {self.error}"
        return f"{self.who} answering again after {self.duration_s:g} s (last error: {self.error})"

    def details(self) -> dict[str, Any]:
        """The event's details: plc, device, unit, endpoint, error, since (and the duration)."""
        details: dict[str, Any] = {
            "plc": self.plc, "device": self.device, "unit": self.unit,
            "endpoint": self.endpoint, "error": self.error, "since": self.since,
        }  # fmt: skip
        if not self.raised:
            details["duration_s"] = self.duration_s
        return details

    def event(self, line: str) -> Event:
        """The journal's and SCADA's `comms` event of this edge on `line`."""
        return Event(
            ts=self.ts,
            line=line,
            kind=EventKind.COMMS,
            state=EventState.RAISED if self.raised else EventState.CLEARED,
            detector="comms",
            severity=COMMS_SEVERITY,
            message=self.message,
            details=self.details(),
        )


class LinkStatus:
    """The comms state of one polled link: outage edges and counters, fed by its source."""

    def __init__(
        self, plc: str, device: str, unit: int | None, endpoint: str, timeout_s: float
    ) -> None:
        self.plc = plc
        self.device = device
        self.unit = unit
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.polls = 0
        self.failures = 0
        self.last_error = ""
        self.last_good: float | None = None  # wall-clock time of the last good poll
        self.since: float | None = None  # start of the current outage
        self.down = False
        self._answered = False

    @property
    def source(self) -> str:
        """The link as its samples name it: `plc/device`, or `plc` for a one-link connection."""
        return f"{self.plc}/{self.device}" if self.device else self.plc

    @property
    def state(self) -> LinkState:
        """Down while alarmed, ok after a good poll, else connecting."""
        if self.down:
            return LinkState.DOWN
        return LinkState.OK if self._answered else LinkState.CONNECTING

    def _edge(self, raised: bool, now: float) -> CommsEdge:
        assert self.since is not None
        return CommsEdge(raised, now, self.since, self.plc, self.device, self.unit,
                         self.endpoint, self.last_error)  # fmt: skip

    def failed(self, error: str, started: float, now: float) -> CommsEdge | None:
        """A poll that began at `started` failed at `now`; the RAISED edge once it is down."""
        self.polls += 1
        self.failures += 1
        self.last_error = error
        self._answered = False
        if self.since is None:
            self.since = started
        if self.down or now - self.since < self.timeout_s:
            return None
        self.down = True
        return self._edge(True, now)

    def answered(self, now: float) -> CommsEdge | None:
        """A good poll at `now`; the CLEARED edge if the link was down."""
        self.polls += 1
        self.last_good = now
        self._answered = True
        edge = self._edge(False, now) if self.down else None
        self.down = False
        self.since = None
        self.last_error = ""  # the journal keeps the outage's error; LastError is what is wrong now
        return edge


EdgeListener = Callable[[CommsEdge], None]


class PlcStatus:
    """One PLC connection's links, summed up as Plcs/<name>/ publishes them."""

    def __init__(self, name: str, links: Sequence[LinkStatus]) -> None:
        self.name = name
        self.links = list(links)
        self.connects = 0  # connections opened, the first included
        self.skipped_slots = 0  # poll slots missed because a poll outlasted its interval
        self.on_edge: EdgeListener | None = None  # told of every edge; must not block

    def failed(self, link: LinkStatus, error: str, started: float, now: float) -> None:
        """Feed a failed poll of `link`."""
        self._tell(link.failed(error, started, now))

    def answered(self, link: LinkStatus, now: float) -> None:
        """Feed a good poll of `link`."""
        self._tell(link.answered(now))

    def _tell(self, edge: CommsEdge | None) -> None:
        if edge is not None and self.on_edge is not None:
            self.on_edge(edge)

    @property
    def state(self) -> str:
        """down if any link is down, else connecting if any is, else ok."""
        states = {link.state for link in self.links}
        for state in (LinkState.DOWN, LinkState.CONNECTING):
            if state in states:
                return str(state.value)
        return str(LinkState.OK.value)

    @property
    def last_error(self) -> str:
        """The error of the first failing link ('' while every link answers)."""
        return next((link.last_error for link in self.links if link.last_error), "")

    @property
    def last_good(self) -> float | None:
        """When every link had last answered (the stalest link's last good poll), or None."""
        times = [link.last_good for link in self.links]
        return None if not times or None in times else min(t for t in times if t is not None)

    @property
    def polls(self) -> int:
        """Polls of every link since start."""
        return sum(link.polls for link in self.links)

    @property
    def failures(self) -> int:
        """Failed polls of every link since start."""
        return sum(link.failures for link in self.links)

    @property
    def reconnects(self) -> int:
        """Connections opened again after the first."""
        return max(0, self.connects - 1)

    def down_links(self) -> list[LinkStatus]:
        """The links that are down now."""
        return [link for link in self.links if link.down]
