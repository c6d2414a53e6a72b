"""The status page's board and sessions, without a server: what the loop leaves, what expires."""

from __future__ import annotations

import json
import math

from agent.pipeline.line import LineResult
from agent.sinks.web.board import HISTORY_POINTS, LineBoard, StatusBoard
from agent.sinks.web.server import MAX_SESSIONS, Sessions
from agent.types import Event, EventKind, EventState, Quality, Score, TagReading


def result(i: int, value: float, events: tuple[Event, ...] = ()) -> LineResult:
    readings = {
        "a": TagReading(value),
        "b": TagReading(math.nan, Quality.BAD, "timeout"),
    }
    return LineResult(
        ts=float(i), readings=readings, spc_states={"a": "in-control", "b": "no-data"},
        scores={"vae": Score(value, 2.0, (1.0, 0.0))}, alarms={"vae": value > 2.0},
        events=events, fused=value > 2.0,
    )  # fmt: skip


def edge(state: EventState, kind: EventKind = EventKind.ANOMALY, tag: str = "") -> Event:
    message = f"{kind.value} {state.value}"
    return Event(ts=1.0, line="l1", kind=kind, state=state, detector="vae", severity=2,
                 message=message, tag=tag, score=3.0, threshold=2.0)  # fmt: skip


def test_the_board_keeps_the_newest_state_and_a_bounded_history() -> None:
    board = LineBoard("l1", ["a", "b"])
    for i in range(HISTORY_POINTS + 50):
        board.observe(result(i, 1.0 + (i % 3)))
    view = board.view()
    json.dumps(view, allow_nan=False)  # NaN readings become null, not invalid JSON
    assert len(view["scores"]) == HISTORY_POINTS == len(view["tags"][0]["trace"])
    a, b = view["tags"]
    assert (a["quality"], b["quality"], b["reason"], b["value"]) == ("good", "bad", "timeout", None)
    assert view["threshold"] == 2.0 and view["score"] == view["scores"][-1]


def test_an_alarm_opens_keeps_its_explanation_and_closes() -> None:
    board = LineBoard("l1", ["a", "b"])
    raised = edge(EventState.RAISED)
    board.observe(result(0, 3.0, (raised,)))
    board.explained("not-an-open-alarm", "ignored")
    board.explained(raised.event_id, "melt_pressure stepped up")
    (alarm,) = board.view()["open_alarms"]
    assert alarm["explanation"] == "melt_pressure stepped up" and alarm["kind"] == "anomaly"
    board.on_event(edge(EventState.RAISED, EventKind.COMMS, tag="plc/dev"))
    assert len(board.view()["open_alarms"]) == 2
    board.observe(result(1, 1.0, (edge(EventState.CLEARED),)))
    (left,) = board.view()["open_alarms"]
    assert left["kind"] == "comms" and board.explanations == {}


def test_the_status_board_lists_every_line() -> None:
    status = StatusBoard({"l1": LineBoard("l1", ["a"]), "l2": LineBoard("l2", ["a"])},
                         model=lambda: {"version": "3 (x)", "status": "probation"})  # fmt: skip
    view = status.view()
    assert [line["line"] for line in view["lines"]] == ["l1", "l2"]
    assert view["model"]["status"] == "probation" and view["plcs"] == []


def test_sessions_expire_and_stay_bounded() -> None:
    now = [0.0]
    sessions = Sessions(10.0, clock=lambda: now[0])
    token = sessions.start("viewer")
    assert sessions.user(token) == "viewer" and sessions.user("guess") is None
    now[0] = 11.0
    assert sessions.user(token) is None  # expired, and forgotten
    first = sessions.start("a")
    for _ in range(MAX_SESSIONS):
        sessions.start("b")
    assert sessions.user(first) is None  # the oldest made room
    last = sessions.start("c")
    sessions.end(last)
    assert sessions.user(last) is None
