"""Publishing by exception, each value under its own poll's time, and overload made visible:
the real agent in-process with two PLCs on loopback (the simulated extruder's pymodbus server
at 10x speed and a hand-written Modbus TCP peer that answers slowly), read by a SignAndEncrypt
SCADA client subscribed through asyncua."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua

from agent.config import SiteConfig, load_tag_map
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine
from agent.runtime.app import Agent
from tests.helpers import SCADA_PASSWORD, eventually, free_port, site_config
from tests.mbap_peer import MbapPeer
from tests.plc_configs import modbus_plc_config
from tests.scada_helpers import node, viewer_client

SPEEDUP = 10.0
SLOW_MAP = '[[tag]]\nname = "tank_level"\naddress = 0\ntype = "uint16"\nunit = "%"\n'
SLOW_VALUE = "Lines/extruder-1/Signals/tank_level/Value"
FAST_VALUE = "Lines/extruder-1/Signals/screw_speed/Value"


@dataclass
class Plant:
    agent: Agent
    slow: MbapPeer
    client: Client


def with_slow_plc(config: SiteConfig, folder: Path, port: int, poll_s: float) -> SiteConfig:
    """The example site plus a second PLC, `slow-plc`, with one tag on `port`."""
    (folder / "slow.toml").write_text(SLOW_MAP)
    plc = modbus_plc_config(port, load_tag_map(folder / "slow.toml"), timeout=1.0, poll_s=poll_s)
    return dataclasses.replace(
        config, plcs=(*config.plcs, dataclasses.replace(plc, name="slow-plc"))
    )


@pytest.fixture
async def plant(
    bundle_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Plant]:
    delay_s, poll_s = request.param
    plc_port, opcua_port = free_port(), free_port()
    extruder = SimulatedPlc(ExtrusionLine(seed=4), port=plc_port, period_s=1.0 / SPEEDUP)
    await extruder.start()
    slow = MbapPeer([42] * 8, delay_s=delay_s)
    await slow.start()
    config = with_slow_plc(site_config(bundle_dir, tmp_path, plc_port, opcua_port, SPEEDUP),
                           tmp_path, slow.port, poll_s)  # fmt: skip
    agent = Agent(config)
    ready = asyncio.Event()
    tasks = [asyncio.create_task(extruder.run()), asyncio.create_task(agent.run(ready))]
    client = await viewer_client(config.opcua, tmp_path / "scada", SCADA_PASSWORD)
    try:
        await asyncio.wait_for(ready.wait(), 20)
        await client.connect()
        yield Plant(agent, slow, client)
    finally:
        await client.disconnect()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await extruder.stop()
        await slow.stop()


class Changes:
    """Counts data change notifications per node, and keeps the last value of each."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.last: dict[str, ua.DataValue] = {}
        self.names: dict[Any, str] = {}

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        name = self.names[node.nodeid]
        self.count[name] = self.count.get(name, 0) + 1
        self.last[name] = data.monitored_item.Value


async def subscribe(client: Client, paths: list[str], changes: Changes) -> None:
    """One subscription reporting every write, a new timestamp included (a SCADA that wants
    to see each sample asks for StatusValueTimestamp; the default hides repeated values)."""
    subscription = await client.create_subscription(50, changes)
    trigger = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
    for path in paths:
        variable = await node(client, path)
        changes.names[variable.nodeid] = path
        # asyncua's public subscribe_data_change takes no filter; this is the call it makes
        await subscription._subscribe(variable, ua.AttributeIds.Value, trigger, queuesize=100)


@pytest.mark.parametrize("plant", [(0.25, 0.5)], indirect=True)
async def test_a_slow_plcs_value_keeps_its_own_time_and_is_not_republished_unchanged(
    plant: Plant,
) -> None:
    changes = Changes()
    await subscribe(plant.client, [SLOW_VALUE, FAST_VALUE], changes)
    await eventually(lambda: _async(SLOW_VALUE in changes.last and FAST_VALUE in changes.last), 5)
    await asyncio.sleep(0.5)
    changes.count.clear()
    await asyncio.sleep(2.5)  # about 5 polls of the slow PLC, 25 of the extruder
    assert changes.count.get(SLOW_VALUE, 0) == 0  # 42 every poll: never written again
    assert changes.count.get(FAST_VALUE, 0) >= 10  # the extruder's values move every step

    plant.slow.registers[0] = 43
    await eventually(lambda: _async(changes.count.get(SLOW_VALUE, 0) >= 1), 5)
    assert changes.count[SLOW_VALUE] == 1
    slow = changes.last[SLOW_VALUE]
    assert slow.Value.Value == 43
    # Stamped when its poll started: the PLC took 0.25 s to answer, so the value reached the
    # address space at least that long after its SourceTimestamp (the line's clock, the
    # extruder's samples, would be later than the poll, not earlier).
    assert slow.ServerTimestamp - slow.SourceTimestamp >= dt.timedelta(seconds=0.24)
    fast = changes.last[FAST_VALUE]
    assert fast.SourceTimestamp != slow.SourceTimestamp
    read = await (await node(plant.client, SLOW_VALUE)).read_data_value()
    assert read.SourceTimestamp == slow.SourceTimestamp  # a later fast sample left it alone


@pytest.mark.parametrize("plant", [(0.3, 0.1)], indirect=True)
async def test_a_plc_slower_than_its_poll_interval_turns_health_degraded_with_the_reason(
    plant: Plant,
) -> None:
    health = await node(plant.client, "Agent/Health")
    skipped = await node(plant.client, "Agent/PollSlotsSkipped")

    async def overloaded() -> bool:
        return "poll slots skipped" in await health.read_value()

    await eventually(overloaded, 10)
    text = await health.read_value()
    assert text.startswith("degraded: ") and "overloaded: " in text
    assert await skipped.read_value() > 0
    assert "overloaded: " in plant.agent.status()  # STATUS= says it too

    plant.slow.delay_s = 0.0  # the PLC keeps up again: the reason goes after its window

    async def recovered() -> bool:
        return "overloaded" not in await health.read_value()

    await eventually(recovered, 20)
    assert "overloaded" not in plant.agent.status()


async def _async(value: bool) -> bool:
    return value
