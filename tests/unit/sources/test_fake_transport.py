"""The Modbus hub behind the shipped in-memory transport: decoding, an exception reply, a lost
link and its recovery, without a network. The same paths against real servers (pymodbus,
libmodbus, a socat pty pair) are in tests/integration/sources/."""

from __future__ import annotations

import asyncio
import doctest
from pathlib import Path

import agent.sources.fake as fake_module
from agent.config import Tag, TagMap
from agent.core.codec import DataType, Layout, Scaling, encode
from agent.sources.fake import FakeTransport
from agent.sources.modbus import ModbusHub
from agent.sources.transport import LinkError
from agent.types import Quality
from tests.plc_configs import modbus_plc_config

PRESSURE = Tag("melt_pressure", "holding", 0, DataType.FLOAT32, Layout(), Scaling(), "bar", "")
SPEED = Tag("screw_speed", "holding", 2, DataType.INT16, Layout(), Scaling(0.1), "rpm", "")
RUNNING = Tag("running", "coil", 0, DataType.BOOL, Layout(), Scaling(), "", "")


def hub_on(transport: FakeTransport, *tags: Tag) -> ModbusHub:
    """A one-device hub polling `tags` through `transport`."""
    tag_map = TagMap(Path("fake.toml"), "test", "fake", tags)
    return ModbusHub(modbus_plc_config(port=1, tag_map=tag_map, timeout=0.5, poll_s=0.1), transport)


def memory() -> dict[tuple[int, str], dict[int, int | bool]]:
    registers = encode(182.5, DataType.FLOAT32) + encode(1234, DataType.INT16)
    return {(1, "holding"): dict(enumerate(registers)), (1, "coil"): {0: True}}


def test_the_examples_run() -> None:
    result = doctest.testmod(fake_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


async def test_the_hub_decodes_what_the_fake_device_holds() -> None:
    transport = FakeTransport(memory())
    sample = await hub_on(transport, PRESSURE, SPEED, RUNNING).poll_once()
    r = sample.readings
    assert (r["melt_pressure"].value, r["melt_pressure"].quality) == (182.5, Quality.GOOD)
    assert r["screw_speed"].value == 123.4 and r["running"].value == 1.0
    assert sorted(transport.requests) == [(1, "coil", 0, 1), (1, "holding", 0, 3)]  # a block each


async def test_an_address_the_device_lacks_is_bad_with_the_exception_named() -> None:
    missing = Tag("spare", "holding", 40, DataType.UINT16, Layout(), Scaling(), "", "")
    sample = await hub_on(FakeTransport(memory()), PRESSURE, missing).poll_once()
    spare = sample.readings["spare"]
    assert spare.quality is Quality.BAD and "illegal data address" in spare.reason
    assert sample.readings["melt_pressure"].quality is Quality.GOOD  # its own block answered


async def test_a_link_lost_under_a_read_marks_every_tag_bad_and_the_hub_reconnects() -> None:
    transport = FakeTransport(memory())
    hub = hub_on(transport, PRESSURE, SPEED)
    assert (await hub.poll_once()).readings["melt_pressure"].quality is Quality.GOOD
    transport.fail_next(LinkError("connection reset by peer", link_down=True))
    lost = await hub.poll_once()
    assert {r.quality for r in lost.readings.values()} == {Quality.BAD}
    assert {r.reason for r in lost.readings.values()} == {"connection reset by peer"}
    await asyncio.sleep(0.45)  # past the hub's reconnect backoff (max_backoff_s 0.4)
    back = await hub.poll_once()
    assert back.readings["melt_pressure"].value == 182.5 and transport.connects == 2


async def test_a_refused_connection_is_bad_until_the_device_is_back() -> None:
    transport = FakeTransport(memory())
    transport.link_down()
    hub = hub_on(transport, PRESSURE)
    refused = (await hub.poll_once()).readings["melt_pressure"]
    assert refused.quality is Quality.BAD and "connection refused" in refused.reason
    assert hub.link.failures == 1
    transport.link_up()
    await asyncio.sleep(0.45)
    assert (await hub.poll_once()).readings["melt_pressure"].quality is Quality.GOOD
