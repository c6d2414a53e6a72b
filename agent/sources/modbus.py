"""One hub per Modbus connection: per-device schedules, batched reads, quality, backoff.

A hub owns one transport (a TCP connection, a serial port, an RTU-over-TCP socket) and polls
every device (unit id) on it on that device's own interval. Requests are serialised on the
connection (one on the wire at a time, which a shared RTU bus requires), but taken block by
block, so a device with many blocks does not hold the line for the others.

Failures never raise into the detection loop; they become bad-quality readings whose reason
says what happened:
- a Modbus exception answer marks only the tags of that request bad;
- a device that does not answer on a working connection is backed off on its own, the others
  carry on;
- a lost connection marks every tag bad and is re-opened with exponential backoff and
  jitter (pymodbus's own reconnect, which backs off up to 300 s, is switched off); its
  devices wait on that one backoff, never on their own on top of it, so the wait after a
  PLC returns is at most `max_backoff_s` (plus one poll);
- while a device waits out a backoff its tags are reported bad at its poll rate, each under
  the time of that report, without touching the wire;
- the connection is "back" (logged, its backoff reset) only after a good read, not when TCP
  connects: a hung PLC accepts connections and answers nothing.
Each failure is logged once at INFO, then quietly until it recovers, with counters. Every
device's poll outcome also feeds its `LinkStatus` (`status`, agent.ops.comms): a device that
fails for longer than the connection's timeout is `down`, and the agent raises a comms alarm
(the one WARNING of the outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import BIT_TABLES, DeviceConfig, PlcConfig, Tag
from agent.core.codec import DataType, decode, decode_bit, decode_string
from agent.core.quality import judge
from agent.ops.comms import LinkStatus, PlcStatus
from agent.sources.backoff import Backoff
from agent.sources.base import Emit, raise_if_cancelled
from agent.sources.blocks import Block, plan_blocks
from agent.sources.decoding import BlockReadings
from agent.sources.transport import ExceptionReply, LinkError, ModbusTransport
from agent.types import Quality, Sample, TagReading, good_reading

log = logging.getLogger(__name__)


@dataclass
class HealthStats:
    """Counters of one device or one connection."""

    polls: int = 0
    requests: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    overruns: int = 0
    last_error: str = ""
    last_ok: float = 0.0


class _Device:
    """A device on the connection: its blocks, schedule, backoff and counters."""

    def __init__(self, config: DeviceConfig, plc: PlcConfig) -> None:
        self.config = config
        self.source = f"{plc.name}/{config.name}"
        self.blocks: list[Block] = plan_blocks(
            config.tag_map.tags, config.max_gap, config.max_registers, config.max_bits
        )
        # each register block's decoder, built once (None for a block of coils or inputs)
        self.readers = [None if b.table in BIT_TABLES else BlockReadings(b) for b in self.blocks]
        self.stats = HealthStats()
        self.backoff = Backoff(min(0.5, config.poll_interval_s), plc.max_backoff_s)
        self.retry_at = 0.0
        self.comms = LinkStatus(plc.name, config.name, config.unit, endpoint(plc), plc.timeout_s)


class ModbusHub:
    """Owns one transport and polls every device on it."""

    def __init__(self, plc: PlcConfig, transport: ModbusTransport | None = None) -> None:
        self.plc = plc
        self.name = plc.name
        self.transport = transport or make_transport(plc)
        self.devices = [_Device(d, plc) for d in plc.devices]
        self.status = PlcStatus(plc.name, [d.comms for d in self.devices])
        self.link = HealthStats()
        self.reconnects = 0
        self._lock = asyncio.Lock()
        self._link_backoff = Backoff(min(0.5, plc.poll_interval_s), plc.max_backoff_s)
        self._link_retry_at = 0.0
        self._link_failing = False

    @property
    def blocks(self) -> list[Block]:
        """Every request of one round over all devices."""
        return [b for d in self.devices for b in d.blocks]

    @property
    def stats(self) -> HealthStats:
        """The first device's counters (the whole story for a one-device connection)."""
        return self.devices[0].stats

    async def _ensure_link(self) -> None:
        if self.transport.connected:
            return
        now = time.monotonic()
        if now < self._link_retry_at:
            raise LinkError(self.link.last_error or "connection down", link_down=True)
        async with self._lock:
            if self.transport.connected:
                return
            try:
                await self.transport.connect()
            except LinkError as exc:
                self._link_down(str(exc))
                raise
        self.reconnects += 1
        self.status.connects += 1

    def _link_answered(self) -> None:
        """A good read: only now is a failing connection back."""
        if self._link_failing:
            log.info("PLC %s: connection %s is back", self.name, self.transport.description)
            self._link_failing = False
            self._link_backoff.reset()

    def _link_down(self, reason: str) -> None:
        self.link.failures += 1
        self.link.last_error = reason
        self._link_retry_at = time.monotonic() + self._link_backoff.next_delay()
        if not self._link_failing:
            log.info("PLC %s: %s; its tags are bad, retrying with backoff", self.name, reason)
            self._link_failing = True

    async def _read_block(
        self, device: _Device, block: Block, reader: BlockReadings | None, ts: float
    ) -> dict[str, TagReading]:
        unit = device.config.unit
        async with self._lock:
            device.stats.requests += 1
            if reader is None:
                bits = await self.transport.read_bits(unit, block.table, block.start, block.count)
                return {
                    t.name: good_reading(1.0 if bits[t.address - block.start] else 0.0, ts)
                    for t in block.tags
                }
            registers = await self.transport.read_registers(
                unit, block.table, block.start, block.count
            )
        return reader.readings(registers, ts)

    async def poll_device(self, device: _Device) -> Sample:
        """Read every block of one device once; never raises."""
        ts = time.time()
        readings: dict[str, TagReading] = {}
        device.stats.polls += 1
        try:
            await self._ensure_link()  # counts its own failed attempts in `link`
        except LinkError as exc:
            return self._failed_sample(device, ts, str(exc), link=True)
        refused = ""  # the first Modbus exception answer of this poll
        try:
            for block, reader in zip(device.blocks, device.readers, strict=True):
                try:
                    readings.update(await self._read_block(device, block, reader, ts))
                except ExceptionReply as exc:
                    readings.update(_bad(block.tags, str(exc)))
                    refused = refused or str(exc)
        except LinkError as exc:
            if exc.link_down:  # the connection broke under a read
                self.transport.close()
                self._link_down(str(exc))
            return self._failed_sample(device, ts, str(exc), link=exc.link_down)
        self._link_answered()
        self._device_ok(device)
        if refused:
            self.status.failed(device.comms, refused, ts, time.time())
        else:
            self.status.answered(device.comms, time.time())
        return Sample(ts=ts, source=device.source, readings=readings)

    def _failed_sample(self, device: _Device, ts: float, reason: str, link: bool) -> Sample:
        self._device_failed(device, reason, link)
        self.status.failed(device.comms, reason, ts, time.time())
        return self._bad_sample(device, ts)

    def _bad_sample(self, device: _Device, ts: float) -> Sample:
        """Every tag of `device` bad with its last error, at `ts`."""
        readings = _bad(device.config.tag_map.tags, device.stats.last_error)
        return Sample(ts=ts, source=device.source, readings=readings)

    def _device_failed(self, device: _Device, reason: str, link: bool) -> None:
        stats = device.stats
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = reason
        # One backoff per failure: a connection down waits on the connection's alone.
        if link:
            device.retry_at = self._link_retry_at
        else:
            device.retry_at = time.monotonic() + device.backoff.next_delay()
        if stats.consecutive_failures == 1:
            log.info("PLC %s: %s; tags bad, retrying with backoff", device.source, reason)
        else:
            log.debug("PLC %s still failing: %s", device.source, reason)

    def _device_ok(self, device: _Device) -> None:
        stats = device.stats
        if stats.consecutive_failures:
            log.info(
                "PLC %s recovered after %d failed polls", device.source, stats.consecutive_failures
            )
        stats.consecutive_failures = 0
        stats.last_ok = time.time()
        device.backoff.reset()

    async def poll_once(self) -> Sample:
        """Poll the first device once (a one-device connection's whole story)."""
        return await self.poll_device(self.devices[0])

    async def _run_device(self, device: _Device, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        interval = device.config.poll_interval_s
        next_at = loop.time()
        while True:
            sample = await self.poll_device(device)
            raise_if_cancelled()  # a stop swallowed inside pymodbus (3.11's wait_for)
            emit(sample)
            if device.stats.consecutive_failures:
                await self._wait_out_backoff(device, emit)
                next_at = loop.time()
                continue
            next_at += interval
            now = loop.time()
            if next_at < now:
                # A slow poll: skip the missed slots instead of bursting to catch up.
                device.stats.overruns += 1
                self.status.skipped_slots += max(1, math.ceil((now - next_at) / interval))
                next_at = now
            await asyncio.sleep(next_at - now)

    async def _wait_out_backoff(self, device: _Device, emit: Emit) -> None:
        """Sleep until the device's retry, reporting its tags bad at the poll rate meanwhile:
        SCADA sees each bad value under the time it was last known bad, not a stale one."""
        interval = device.config.poll_interval_s
        while (left := device.retry_at - time.monotonic()) > 0:
            await asyncio.sleep(min(interval, left))
            if device.retry_at - time.monotonic() > 0:
                emit(self._bad_sample(device, time.time()))

    async def run(self, emit: Emit) -> None:
        """Poll every device on its own schedule until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                for device in self.devices:
                    tg.create_task(self._run_device(device, emit), name=f"poll:{device.source}")
        finally:
            with contextlib.suppress(Exception):
                self.transport.close()


def _bad(tags: Sequence[Tag], reason: str) -> dict[str, TagReading]:
    return {t.name: TagReading(math.nan, Quality.BAD, reason) for t in tags}


def decode_tag(tag: Tag, registers: Sequence[int], block_start: int) -> TagReading:
    """One tag's reading from the registers of the block that holds it, alone (the reference
    `BlockReadings` is tested against)."""
    offset = tag.address - block_start
    words = registers[offset : offset + tag.span]
    if tag.dtype is DataType.BOOL:
        assert tag.bit is not None
        return TagReading(1.0 if decode_bit(words[0], tag.bit) else 0.0)
    if tag.dtype is DataType.STRING:
        return TagReading(math.nan, Quality.GOOD, text=decode_string(words, tag.length, tag.layout))
    # the quality policy (agent.core.quality): non-finite is bad, far outside `range` uncertain
    return judge(tag.scaling.to_engineering(decode(words, tag.dtype, tag.layout)), tag.eu_range)


def endpoint(plc: PlcConfig) -> str:
    """Where a Modbus connection goes, for messages: `host:port` or the serial port."""
    if plc.protocol == "modbus-rtu" and plc.serial is not None:
        return plc.serial.port
    return f"{plc.host}:{plc.port}"


def make_transport(plc: PlcConfig) -> ModbusTransport:
    """The transport for a Modbus connection: TCP, RTU on a serial port, or RTU over TCP."""
    if plc.protocol == "modbus-tcp":
        from agent.sources.modbus_tcp import PymodbusTcpTransport

        return PymodbusTcpTransport(plc.host, plc.port, plc.timeout_s, name=plc.name)
    from agent.sources import rtu

    if plc.protocol == "modbus-rtu":
        assert plc.serial is not None
        return rtu.SerialRtuTransport(plc.serial, plc.timeout_s)
    if plc.protocol == "modbus-rtu-over-tcp":
        return rtu.RtuOverTcpTransport(plc.host, plc.port, plc.timeout_s)
    raise ValueError(f"{plc.protocol} is not a Modbus protocol")
