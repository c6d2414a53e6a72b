"""The Modbus TCP hub against a real pymodbus server (the simulator) on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path

import pytest

from agent.config import Tag, load_tag_map
from agent.demo.simulator.plc import SimulatedPlc, Tick, default_tag_map
from agent.demo.simulator.process import SIGNAL_NAMES, ExtrusionLine
from agent.sources.backoff import Backoff
from agent.sources.modbus import ModbusHub
from agent.types import Quality, Sample
from tests.helpers import free_port, wait_for
from tests.plc_configs import modbus_plc_config


async def test_hub_decodes_what_the_plc_encoded() -> None:
    port = free_port()
    ticks: list[Tick] = []
    plc = SimulatedPlc(ExtrusionLine(seed=5), port=port, period_s=10.0, on_tick=ticks.append)
    await plc.start()
    try:
        hub = ModbusHub(modbus_plc_config(port))
        sample = await hub.poll_once()
    finally:
        await plc.stop()
    # registers 0..12 and the heartbeat at 20 are 7 apart: within the gap tolerance, one read
    assert [(b.start, b.count) for b in hub.blocks] == [(0, 21)]
    truth = dict(zip(SIGNAL_NAMES, ticks[-1].values, strict=True))
    resolution = {t.name: abs(t.scaling.scale) for t in hub.plc.tags if isinstance(t, Tag)}
    for name, value in truth.items():
        reading = sample.readings[name]
        assert reading.quality is Quality.GOOD, reading.reason
        # float32 tags carry ~7 digits; scaled int16 tags round to their resolution
        tolerance = max(1e-4 * abs(value), resolution[name] / 2 + 1e-9)
        assert reading.value == pytest.approx(value, abs=tolerance), name
    assert sample.readings["heartbeat"].value == 1.0


async def test_dead_plc_gives_bad_tags_then_recovers_without_restart() -> None:
    port = free_port()  # nothing listens here yet
    hub = ModbusHub(modbus_plc_config(port))
    samples: list[Sample] = []
    task = asyncio.create_task(hub.run(samples.append))
    plc = SimulatedPlc(ExtrusionLine(seed=1), port=port, period_s=0.1)
    try:
        await wait_for(lambda: len(samples) >= 3, timeout=5)
        bad = samples[0].readings["melt_pressure"]
        assert bad.quality is Quality.BAD
        assert math.isnan(bad.value)
        assert "127.0.0.1" in bad.reason and str(port) in bad.reason
        assert hub.stats.consecutive_failures >= 3
        assert hub.link.failures >= 1  # connect attempts, spaced by the link backoff
        await plc.start()  # the PLC comes back
        await wait_for(
            lambda: samples[-1].readings["melt_pressure"].quality is Quality.GOOD, timeout=5
        )
        assert hub.stats.consecutive_failures == 0
        assert hub.stats.failures >= 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await plc.stop()


async def test_illegal_address_marks_only_that_block_bad(tmp_path: Path) -> None:
    base = default_tag_map().read_text()
    extra = '\n[[tag]]\nname = "not_there"\naddress = 500\ntype = "uint16"\n'
    path = tmp_path / "map.toml"
    path.write_text(base + extra)
    port = free_port()
    plc = SimulatedPlc(ExtrusionLine(seed=2), port=port, period_s=10.0)
    await plc.start()
    try:
        hub = ModbusHub(modbus_plc_config(port, load_tag_map(path)))
        sample = await hub.poll_once()
    finally:
        await plc.stop()
    missing = sample.readings["not_there"]
    assert missing.quality is Quality.BAD
    assert "illegal data address" in missing.reason
    assert sample.readings["screw_speed"].quality is Quality.GOOD
    assert hub.stats.consecutive_failures == 0  # the connection itself is fine


async def test_silent_plc_times_out_within_the_deadline() -> None:
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
        loop = asyncio.get_running_loop()
        started = loop.time()
        sample = await hub.poll_once()
        elapsed = loop.time() - started
    finally:
        server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
    assert sample.readings["throughput"].quality is Quality.BAD
    assert "no reply within 0.2 s" in sample.readings["throughput"].reason
    # one block under a 0.2 s deadline: the poll gives up well before a second
    assert elapsed < 1.0


def test_backoff_grows_caps_and_resets() -> None:
    import random

    backoff = Backoff(initial=0.5, maximum=4.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    assert all(0.25 <= d <= 4.0 for d in delays)
    assert max(delays[:2]) <= 1.0 and min(delays[-3:]) >= 2.0  # grew, then capped
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_plc_config_is_frozen() -> None:
    config = modbus_plc_config(502)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
