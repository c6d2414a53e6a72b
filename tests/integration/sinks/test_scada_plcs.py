"""Plcs/ and the comms alarm conditions of the SCADA server, through a real asyncua client; the
PLC statuses are fed by hand, as a source would feed them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua

from agent.ops.comms import LinkStatus, PlcStatus
from agent.pipeline.line import LineResult
from agent.sinks.scada import ScadaServer
from agent.types import EventKind, EventState
from tests.helpers import free_port
from tests.scada_helpers import (
    LINE,
    PASSWORDS,
    client_certificate,
    node,
    scada_config,
    secure_client,
    site_tags,
    trust,
)

ACK = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
REFUSED = "connect to 10.0.0.5:502 failed: [Errno 111] Connect call failed"


@dataclass
class Rig:
    server: ScadaServer
    plc: PlcStatus
    cert: Path
    key: Path
    uri: str
    acks: list[tuple[str, str, str]]

    def client(self, user: str) -> Any:
        return secure_client(
            self.server.config.endpoint, self.cert, self.key, self.uri, user, PASSWORDS[user]
        )

    def publish(self) -> None:
        """What each processed sample does: offer a line result, which wakes the publisher."""
        self.server.offer(LineResult(time.time(), {}, {}, {}, {}, ()))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = scada_config(tmp_path, free_port())
    links = [LinkStatus("press-1", d, u, "10.0.0.5:502", timeout_s=1.0) for d, u in
             (("a", 1), ("b", 2))]  # fmt: skip
    plc = PlcStatus("press-1", links)
    server = ScadaServer(config, LINE, site_tags(), [], "7 (test)", threshold=4.0, plcs=[plc])
    plc.on_edge = lambda edge: server.offer_event(edge.event(LINE))  # as the agent does
    acks: list[tuple[str, str, str]] = []
    server.on_acknowledge = lambda *ack: acks.append(ack)
    await server.start()
    task = asyncio.create_task(server.run())
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    try:
        yield Rig(server, plc, cert, key, uri, acks)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


class Events:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def event_notification(self, event: Any) -> None:
        self.events.append(event)


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def read(client: Client, path: str) -> Any:
    return await (await node(client, path)).read_value()


async def test_plc_nodes_follow_the_status(rig: Rig) -> None:
    a, b = rig.plc.links
    async with await rig.client("ada") as client:
        base = "Plcs/press-1"
        plcs = await node(client, "Plcs")
        names = [(await n.read_browse_name()).Name for n in await plcs.get_children()]
        assert names == ["press-1"]
        assert await read(client, f"{base}/State") == "connecting"  # nothing polled yet
        assert await read(client, f"{base}/LastGood") == ua.get_win_epoch()  # null
        assert await read(client, f"{base}/Polls") == 0
        state = await node(client, f"{base}/State")
        assert await state.read_data_type() == ua.NodeId(ua.ObjectIds.String)
        polls = await node(client, f"{base}/Polls")
        assert await polls.read_data_type() == ua.NodeId(ua.ObjectIds.UInt64)

        now = time.time()
        rig.plc.answered(a, now - 1.0)
        rig.plc.answered(b, now)
        rig.plc.connects = 2
        rig.publish()

        async def ok() -> bool:
            return bool(await read(client, f"{base}/State") == "ok")

        await until(ok)
        last_good = await read(client, f"{base}/LastGood")
        assert abs(last_good.timestamp() - (now - 1.0)) < 0.01  # the stalest device's
        assert (await read(client, f"{base}/Polls"), await read(client, f"{base}/Reconnects")) == (
            2, 1
        )  # fmt: skip

        rig.plc.failed(b, REFUSED, started=now, now=now + 0.1)  # failing, not yet down
        rig.publish()

        async def connecting() -> bool:
            return bool(await read(client, f"{base}/State") == "connecting")

        await until(connecting)
        assert await read(client, f"{base}/LastError") == REFUSED
        assert await read(client, f"{base}/Failures") == 1


async def test_comms_condition_holds_while_any_device_is_down_and_is_acknowledged(
    rig: Rig,
) -> None:
    a, b = rig.plc.links
    async with await rig.client("otto") as operator:
        seen = Events()
        sub = await operator.create_subscription(50, seen)
        ns = await operator.get_namespace_index("urn:lineside")
        await sub.subscribe_events(
            operator.nodes.server, operator.get_node(f"ns={ns};s=Types/LinesideCommsAlarmType")
        )
        t = time.time()
        rig.plc.failed(a, REFUSED, started=t, now=t)
        rig.plc.failed(a, REFUSED, started=t + 1, now=t + 1)  # down: raised

        async def events(n: int) -> bool:
            return len(seen.events) >= n

        await until(lambda: events(1))
        raised = seen.events[0]
        assert getattr(raised, "ActiveState/Id") is True and raised.Severity == 600
        assert raised.Message.Text.startswith("PLC press-1 unit 1 (10.0.0.5:502) not answering")
        assert raised.SourceNode == (await node(operator, "Plcs/press-1")).nodeid
        assert await read(operator, f"Lines/{LINE}/LastEvent") == raised.Message.Text

        rig.plc.failed(b, "no reply", started=t + 1, now=t + 2)
        rig.plc.failed(b, "no reply", started=t + 2, now=t + 3)  # a second device down
        await until(lambda: events(2))
        assert "unit 2" in seen.events[1].Message.Text
        rig.plc.answered(a, t + 4)  # b is still down: the condition holds
        await asyncio.sleep(0.3)
        assert len(seen.events) == 2

        condition = await node(operator, "Plcs/press-1/Alarm")
        await condition.call_method(ACK, seen.events[1].EventId, ua.LocalizedText("cable"))
        await until(lambda: events(3))
        assert getattr(seen.events[2], "AckedState/Id") is True
        (ack,) = rig.acks
        assert ack[1:] == ("otto", "cable")

        rig.plc.answered(b, t + 5)  # the last device back: cleared
        await until(lambda: events(4))
        cleared = seen.events[3]
        assert getattr(cleared, "ActiveState/Id") is False and cleared.Retain is False
        assert "unit 2 (10.0.0.5:502) answering again after 4 s" in cleared.Message.Text


def test_comms_events_are_of_their_own_kind() -> None:
    link = LinkStatus("press-1", "", 1, "10.0.0.5:502", timeout_s=0.0)
    edge = link.failed(REFUSED, started=1.0, now=1.0)
    assert edge is not None
    event = edge.event(LINE)
    assert (event.kind, event.state) == (EventKind.COMMS, EventState.RAISED)
