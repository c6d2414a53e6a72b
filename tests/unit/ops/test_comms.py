"""The comms edge: one raise per outage past the timeout, a clear on the first good poll."""

from __future__ import annotations

import doctest

import agent.ops.comms
from agent.ops.comms import COMMS_SEVERITY, CommsEdge, LinkState, LinkStatus, PlcStatus
from agent.types import EventKind, EventState

REFUSED = "connect to 10.0.0.5:502 failed: [Errno 111] Connect call failed ('10.0.0.5', 502)"


def press(device: str = "", unit: int | None = 1, timeout_s: float = 1.0) -> LinkStatus:
    return LinkStatus("press-1", device, unit, "10.0.0.5:502", timeout_s)


def watched(*links: LinkStatus) -> tuple[PlcStatus, list[CommsEdge]]:
    plc = PlcStatus("press-1", links)
    edges: list[CommsEdge] = []
    plc.on_edge = edges.append
    return plc, edges


def test_the_module_examples_run() -> None:
    assert doctest.testmod(agent.ops.comms).failed == 0


def test_one_raise_per_outage_however_many_polls_fail() -> None:
    link = press()
    plc, edges = watched(link)
    plc.answered(link, now=99.0)
    for t in range(100, 130):  # 30 failed polls, one a second
        plc.failed(link, REFUSED, started=float(t), now=float(t))
    assert [e.raised for e in edges] == [True]
    raised = edges[0]
    assert raised.ts == 101.0 and raised.since == 100.0  # the first poll 1 s (timeout) after
    assert link.failures == 30 and link.polls == 31
    assert plc.state == "down" and plc.last_error == REFUSED


def test_a_glitch_shorter_than_the_timeout_never_alarms() -> None:
    link = press(timeout_s=2.0)
    plc, edges = watched(link)
    plc.answered(link, now=10.0)
    plc.failed(link, REFUSED, started=11.0, now=11.0)
    plc.failed(link, REFUSED, started=12.5, now=12.5)  # 1.5 s into the outage
    assert plc.state == "connecting"
    plc.answered(link, now=13.0)
    plc.failed(link, REFUSED, started=14.0, now=14.0)  # a new outage starts its own clock
    plc.failed(link, REFUSED, started=15.5, now=15.5)
    assert edges == []
    assert plc.state == "connecting"


def test_a_poll_that_timed_out_raises_at_once() -> None:
    link = press(timeout_s=0.5)
    plc, edges = watched(link)
    plc.failed(link, "unit 1 holding 0+21: no reply within 0.5 s", started=20.0, now=20.75)
    assert [e.raised for e in edges] == [True]
    assert edges[0].message == (
        "PLC press-1 unit 1 (10.0.0.5:502) not answering: "
        "unit 1 holding 0+21: no reply within 0.5 s"
    )


def test_the_first_good_poll_clears_with_the_outage_duration() -> None:
    link = press(device="extruder")
    plc, edges = watched(link)
    plc.answered(link, now=1.0)
    plc.failed(link, REFUSED, started=2.0, now=2.0)
    plc.failed(link, REFUSED, started=4.0, now=4.0)
    plc.failed(link, "[Errno 113] No route to host", started=8.0, now=8.0)
    plc.answered(link, now=14.5)
    plc.answered(link, now=15.5)
    assert [e.raised for e in edges] == [True, False]
    cleared = edges[1]
    assert cleared.duration_s == 12.5 and cleared.since == 2.0
    assert cleared.error == "[Errno 113] No route to host"  # the last error seen
    assert cleared.message == (
        "PLC press-1 unit 1 (10.0.0.5:502) answering again after 12.5 s "
        "(last error: [Errno 113] No route to host)"
    )
    assert plc.state == "ok" and plc.last_error == "" and plc.last_good == 15.5


def test_edges_become_comms_events_of_the_line() -> None:
    link = press(device="extruder")
    plc, edges = watched(link)
    plc.failed(link, REFUSED, started=0.0, now=0.0)
    plc.failed(link, REFUSED, started=1.0, now=1.0)
    plc.answered(link, now=3.0)
    raised, cleared = (e.event("line-7") for e in edges)
    assert (raised.kind, raised.state, raised.detector) == (
        EventKind.COMMS, EventState.RAISED, "comms"
    )  # fmt: skip
    assert raised.line == "line-7" and raised.tag == "" and raised.severity == COMMS_SEVERITY
    assert raised.details == {
        "plc": "press-1", "device": "extruder", "unit": 1, "endpoint": "10.0.0.5:502",
        "error": REFUSED, "since": 0.0,
    }  # fmt: skip
    assert "[Errno 111]" in raised.message and "press-1 unit 1" in raised.message
    assert cleared.state is EventState.CLEARED and cleared.details["duration_s"] == 3.0
    assert raised.event_id != cleared.event_id


def test_an_opcua_link_has_no_unit() -> None:
    link = LinkStatus("oven", "", None, "opc.tcp://10.0.0.9:4840/", timeout_s=0.5)
    plc, edges = watched(link)
    plc.failed(link, "ConnectionRefusedError: [Errno 111] Connect call failed", 0.0, 0.6)
    assert edges[0].message == (
        "PLC oven (opc.tcp://10.0.0.9:4840/) not answering: "
        "ConnectionRefusedError: [Errno 111] Connect call failed"
    )
    assert link.source == "oven" and press(device="extruder").source == "press-1/extruder"


def test_states_before_and_between_answers() -> None:
    link = press()
    assert link.state is LinkState.CONNECTING  # nothing polled yet
    link.answered(now=1.0)
    assert link.state is LinkState.OK
    link.failed(REFUSED, started=2.0, now=2.0)
    assert link.state is LinkState.CONNECTING
    link.failed(REFUSED, started=3.0, now=3.0)
    assert link.state is LinkState.DOWN


def test_a_plc_is_down_if_any_device_is_and_counts_all_of_them() -> None:
    a, b = press("a", unit=1), press("b", unit=2)
    plc, edges = watched(a, b)
    assert plc.state == "connecting" and plc.last_good is None
    plc.answered(a, now=1.0)
    assert plc.state == "connecting" and plc.last_good is None  # b has never answered
    plc.answered(b, now=2.0)
    assert plc.state == "ok" and plc.last_good == 1.0  # when every device had answered
    plc.failed(b, "unit 2 holding 0+4: no reply within 1.0 s", started=3.0, now=4.5)
    plc.answered(a, now=5.0)
    assert plc.state == "down" and plc.down_links() == [b]
    assert plc.last_error == "unit 2 holding 0+4: no reply within 1.0 s"
    assert [(e.device, e.unit, e.raised) for e in edges] == [("b", 2, True)]
    assert (plc.polls, plc.failures) == (4, 1)
    plc.connects += 3
    assert plc.reconnects == 2  # the first connection is not a reconnect


def test_without_a_listener_edges_are_only_state() -> None:
    link = press()
    plc = PlcStatus("press-1", [link])
    plc.failed(link, REFUSED, started=0.0, now=5.0)
    assert plc.state == "down"
