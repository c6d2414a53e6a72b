"""The Modbus hub's comms edges against real peers on loopback: a pymodbus server that goes away
and comes back, a tag map reading an address the server does not have, a PLC that never
answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.config import load_tag_map
from agent.demo.simulator.plc import SimulatedPlc, default_tag_map
from agent.demo.simulator.process import ExtrusionLine
from agent.ops.comms import CommsEdge
from agent.sources.modbus import ModbusHub
from agent.types import Quality, Sample
from tests.helpers import free_port, wait_for
from tests.plc_configs import modbus_plc_config


def watched(hub: ModbusHub) -> list[CommsEdge]:
    edges: list[CommsEdge] = []
    hub.status.on_edge = edges.append
    return edges


async def test_lost_server_raises_once_with_the_errno_and_clears_when_back() -> None:
    port = free_port()
    plc = SimulatedPlc(ExtrusionLine(seed=4), port=port, period_s=0.1)
    await plc.start()
    hub = ModbusHub(modbus_plc_config(port, timeout=0.2, poll_s=0.1))
    edges = watched(hub)
    samples: list[Sample] = []
    task = asyncio.create_task(hub.run(samples.append))
    try:
        await wait_for(lambda: hub.status.state == "ok", timeout=5)
        await plc.stop()
        await wait_for(lambda: hub.status.state == "down", timeout=5)
        failures = hub.status.failures
        await wait_for(lambda: hub.status.failures >= failures + 3, timeout=10)
        assert [e.raised for e in edges] == [True]  # one raise, however many polls fail
        raised = edges[0]
        assert raised.plc == "test-plc" and raised.device == "extruder" and raised.unit == 1
        assert raised.endpoint == f"127.0.0.1:{port}"
        assert "[Errno 111]" in hub.status.last_error  # connection refused, by its errno
        assert raised.message.startswith(f"PLC test-plc unit 1 (127.0.0.1:{port}) not answering")
        good_before = hub.status.last_good
        assert good_before is not None

        await plc.start()  # the same port again
        await wait_for(lambda: len(edges) == 2, timeout=10)
        cleared = edges[1]
        assert not cleared.raised and cleared.duration_s > 0
        assert hub.status.state == "ok" and hub.status.last_error == ""
        last_good = hub.status.last_good
        assert last_good is not None and last_good > good_before
        assert hub.status.reconnects >= 1
        assert samples[-1].readings["melt_pressure"].quality is Quality.GOOD
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await plc.stop()


async def test_exception_answer_raises_a_comms_alarm_naming_the_code(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    extra = '\n[[tag]]\nname = "not_there"\naddress = 500\ntype = "uint16"\n'
    path.write_text(default_tag_map().read_text() + extra)
    port = free_port()
    plc = SimulatedPlc(ExtrusionLine(seed=2), port=port, period_s=0.1)
    await plc.start()
    hub = ModbusHub(modbus_plc_config(port, load_tag_map(path), timeout=0.2, poll_s=0.1))
    edges = watched(hub)
    samples: list[Sample] = []
    task = asyncio.create_task(hub.run(samples.append))
    try:
        await wait_for(lambda: bool(edges), timeout=5)
        assert hub.status.state == "down"
        assert "exception 2 (illegal data address)" in edges[0].message
        assert "unit 1 holding 500+1" in edges[0].error
        sample = samples[-1]
        assert sample.readings["not_there"].quality is Quality.BAD
        assert sample.readings["screw_speed"].quality is Quality.GOOD  # the rest still reads
        assert hub.stats.consecutive_failures == 0  # no backoff: the device answers
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await plc.stop()


async def test_a_poll_that_times_out_raises_at_once() -> None:
    handlers: list[asyncio.Task[None]] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.read(1024)  # accept the request and never answer
            await asyncio.sleep(30)
        finally:
            writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        hub = ModbusHub(modbus_plc_config(port, timeout=0.2))
        edges = watched(hub)
        await hub.poll_once()
    finally:
        server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
    # no answer for longer than the timeout within one poll: down at the first failed poll
    assert [e.raised for e in edges] == [True]
    assert "no reply within 0.2 s" in edges[0].message
