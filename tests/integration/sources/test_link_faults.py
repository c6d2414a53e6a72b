"""Faults on a Modbus TCP link and what each reading then says, against real peers on loopback:
a pymodbus server that is killed and comes back, a hand-written peer that hangs or answers
with transaction id 0 one reply behind, values a PLC should never send. Per fault: the status
code each reading maps to, the time it carries, the time to Bad and back to Good as bounds
derived from the configured timeout, poll interval and `max_backoff_s`."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import struct
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from asyncua import ua
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from agent.config import PlcConfig, load_tag_map
from agent.sinks.scada.limits import status_of
from agent.sources.modbus import ModbusHub
from agent.types import Quality, Sample
from tests.helpers import free_port, wait_for
from tests.mbap_peer import MbapPeer
from tests.plc_configs import modbus_plc_config

TAGS = """
[[tag]]
name = "speed"
address = 0
type = "float32"
unit = "rpm"
range = [0.0, 150.0]

[[tag]]
name = "state_word"
address = 2
type = "uint16"
role = "status"
"""
POLL_S = 0.1
TIMEOUT_S = 0.3
MAX_BACKOFF_S = 1.0
SLACK_S = 0.5  # scheduling on a loaded two-core machine: bounds, not speed


def words(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo, 7]


def plc(tmp_path: Path, port: int) -> PlcConfig:
    path = tmp_path / "map.toml"
    path.write_text(TAGS)
    config = modbus_plc_config(port, load_tag_map(path), timeout=TIMEOUT_S, poll_s=POLL_S)
    return replace(config, max_backoff_s=MAX_BACKOFF_S)


class PymodbusPlc:
    """A real pymodbus server on a fixed port, which can be killed and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.registers = words(0.0)
        self.server: ModbusTcpServer | None = None

    async def set(self, value: float) -> None:
        self.registers = words(value)
        if self.server is not None:
            await self.server.async_setValues(1, 3, 0, self.registers)

    async def start(self) -> None:
        device = SimDevice(
            id=1, simdata=[SimData(0, count=10, values=0, datatype=SimDataType.REGISTERS)]
        )
        self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)
        await self.set(struct.unpack(">f", struct.pack(">HH", *self.registers[:2]))[0])

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            self.server = None


async def running(hub: ModbusHub) -> tuple[list[Sample], asyncio.Task[None]]:
    samples: list[Sample] = []
    return samples, asyncio.create_task(hub.run(samples.append))


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def more_than(samples: list[Sample], count: int) -> Callable[[], bool]:
    return lambda: len(samples) > count


def quality(sample: Sample) -> Quality:
    return sample.readings["speed"].quality


async def test_values_a_plc_should_never_send(tmp_path: Path) -> None:
    port = free_port()
    server = PymodbusPlc(port)
    await server.set(42.0)
    await server.start()
    samples, task = await running(ModbusHub(plc(tmp_path, port)))
    try:
        await wait_for(lambda: bool(samples) and quality(samples[-1]) is Quality.GOOD, 5)
        assert samples[-1].readings["state_word"].value == 7.0
        for sent, code in (
            (math.nan, ua.StatusCodes.BadSensorFailure),
            (math.inf, ua.StatusCodes.BadSensorFailure),
            (-math.inf, ua.StatusCodes.BadSensorFailure),
            (3.4e38, ua.StatusCodes.UncertainEngineeringUnitsExceeded),
            (-20.0, ua.StatusCodes.UncertainEngineeringUnitsExceeded),
            (160.0, ua.StatusCodes.Good),  # within the 10 % margin of 0..150
        ):
            await server.set(sent)
            await wait_for(more_than(samples, len(samples) + 1), 5)
            reading = samples[-1].readings["speed"]
            assert status_of(reading) == code, (sent, reading)
    finally:
        await stopped(task)
        await server.stop()


async def test_killed_plc_bad_at_the_poll_rate_and_good_within_the_backoff_cap(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = PymodbusPlc(port)
    await server.set(42.0)
    await server.start()
    hub = ModbusHub(plc(tmp_path, port))
    samples, task = await running(hub)
    try:
        await wait_for(lambda: bool(samples) and quality(samples[-1]) is Quality.GOOD, 5)
        await server.stop()
        killed = time.time()
        await wait_for(lambda: quality(samples[-1]) is Quality.BAD, 5)
        first_bad = next(
            s for s in samples if s.ts >= killed - POLL_S and quality(s) is Quality.BAD
        )
        assert first_bad.ts - killed <= POLL_S + TIMEOUT_S * 1.5 + SLACK_S
        assert status_of(samples[-1].readings["speed"]) == ua.StatusCodes.BadNoCommunication
        # Down long enough for the backoff to reach its cap several times over.
        await asyncio.sleep(4 * MAX_BACKOFF_S)
        bad = [s for s in samples if s.ts > first_bad.ts]
        gaps = [b.ts - a.ts for a, b in itertools.pairwise(bad)]
        assert max(gaps) <= POLL_S + TIMEOUT_S + SLACK_S  # re-stamped at the poll rate
        assert all(s.readings["speed"].reason for s in bad)
        await server.start()
        back = time.time()
        await wait_for(lambda: quality(samples[-1]) is Quality.GOOD, 4 * MAX_BACKOFF_S)
        good = next(s for s in samples if s.ts >= back and quality(s) is Quality.GOOD)
        # One backoff: at most the cap, one poll and one connect after the PLC returns.
        assert good.ts - back <= MAX_BACKOFF_S + POLL_S + TIMEOUT_S + SLACK_S
    finally:
        await stopped(task)
        await server.stop()


async def test_hung_plc_is_timeout_and_back_only_after_a_good_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    peer = MbapPeer(words(42.0))
    await peer.start()
    hub = ModbusHub(plc(tmp_path, peer.port))
    samples, task = await running(hub)
    caplog.set_level(logging.INFO, logger="agent.sources.modbus")
    try:
        await wait_for(lambda: bool(samples) and quality(samples[-1]) is Quality.GOOD, 5)
        last_good = samples[-1]
        peer.mode = "hang"
        hung = time.time()
        await wait_for(lambda: quality(samples[-1]) is Quality.BAD, 5)
        first_bad = next(s for s in samples if quality(s) is Quality.BAD)
        assert first_bad.ts - hung <= POLL_S + SLACK_S  # the poll that hung, stamped at its start
        reading = samples[-1].readings["speed"]
        assert status_of(reading) == ua.StatusCodes.BadTimeout, reading.reason
        assert last_good.ts < hung  # the last good value never looked fresher than it was
        await asyncio.sleep(2 * MAX_BACKOFF_S)
        assert "is back" not in caplog.text
        peer.mode = "ok"
        back = time.time()
        await wait_for(lambda: quality(samples[-1]) is Quality.GOOD, 4 * MAX_BACKOFF_S)
        good = next(s for s in samples if s.ts >= back and quality(s) is Quality.GOOD)
        assert good.ts - back <= MAX_BACKOFF_S + POLL_S + TIMEOUT_S * 1.5 + SLACK_S
    finally:
        await stopped(task)
        await peer.stop()


async def test_transaction_id_zero_one_reply_behind_is_never_good(tmp_path: Path) -> None:
    peer = MbapPeer(words(42.0), mode="tid0-behind")
    await peer.start()
    hub = ModbusHub(plc(tmp_path, peer.port))
    samples, task = await running(hub)
    try:
        await wait_for(lambda: peer.requests >= 10, 10)
        assert samples and all(quality(s) is Quality.BAD for s in samples)
        reading = samples[-1].readings["speed"]
        assert "transaction id 0" in reading.reason
        assert status_of(reading) == ua.StatusCodes.BadCommunicationError
    finally:
        await stopped(task)
        await peer.stop()
