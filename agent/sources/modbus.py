"""One hub per Modbus TCP connection: batched reads under a deadline, bad quality on failure,
reconnection with exponential backoff and jitter. pymodbus's own reconnect loop is switched off
(its default backs off up to 300 s; a line cannot wait five minutes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from agent.config import PlcConfig, Tag
from agent.sources.base import Emit
from agent.sources.blocks import Block, plan_blocks
from agent.sources.codec import decode
from agent.types import Quality, Sample, TagReading

log = logging.getLogger(__name__)

_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class Backoff:
    """Exponential backoff with full jitter between `initial` and `maximum` seconds."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The next wait: grows 2x per failure up to `maximum`, jittered to 50..100 %."""
        ceiling = min(self.maximum, self.initial * (2.0**self.attempt))
        self.attempt += 1
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Back to the first delay after a success."""
        self.attempt = 0


@dataclass
class HubStats:
    """Counters a hub exposes: what it did and how it is doing now."""

    polls: int = 0
    failures: int = 0
    reconnects: int = 0
    consecutive_failures: int = 0
    overruns: int = 0
    connected: bool = False
    last_error: str = ""
    last_ok: float = field(default=0.0)


class _ReadFailed(Exception):
    """The connection is unusable; every tag of the hub goes bad with this reason."""


class ModbusTcpHub:
    """Owns one Modbus TCP client for one PLC and turns its tag map into samples."""

    def __init__(self, plc: PlcConfig) -> None:
        self.plc = plc
        self.name = plc.name
        self.blocks: list[Block] = plan_blocks(plc.tag_map.tags)
        self.stats = HubStats()
        self._client: AsyncModbusTcpClient | None = None
        self._backoff = Backoff(initial=min(0.5, plc.poll_interval_s), maximum=plc.max_backoff_s)

    def _new_client(self) -> AsyncModbusTcpClient:
        return AsyncModbusTcpClient(
            self.plc.host,
            port=self.plc.port,
            timeout=self.plc.timeout_s,
            retries=0,
            reconnect_delay=0,  # 0 disables pymodbus's background reconnect; we own it
            name=self.plc.name,
        )

    async def _connect(self) -> None:
        client = self._client or self._new_client()
        self._client = client
        try:
            ok = await asyncio.wait_for(client.connect(), self.plc.timeout_s)
        except (TimeoutError, OSError, ModbusException) as exc:
            ok = False
            reason = f"connect to {self.plc.host}:{self.plc.port} failed: {exc or 'timeout'}"
        else:
            reason = f"connection to {self.plc.host}:{self.plc.port} refused or unreachable"
        if not ok:
            self._drop_client()
            raise _ReadFailed(reason)
        self.stats.reconnects += 1
        self.stats.connected = True

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self.stats.connected = False

    async def _read_block(self, block: Block) -> dict[str, TagReading]:
        assert self._client is not None
        read = (
            self._client.read_holding_registers
            if block.table == "holding"
            else self._client.read_input_registers
        )
        try:
            response = await read(block.start, count=block.count, device_id=self.plc.unit)
        except ModbusException as exc:
            raise _ReadFailed(f"read {block.table} {block.start}+{block.count}: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", 0)
            reason = (
                f"PLC answered exception {code} ({_EXCEPTION_NAMES.get(code, 'unknown')}) "
                f"to {block.table} {block.start}+{block.count}"
            )
            return {t.name: TagReading(math.nan, Quality.BAD, reason) for t in block.tags}
        registers = response.registers
        if len(registers) != block.count:
            raise _ReadFailed(f"short reply: {len(registers)} of {block.count} registers")
        return {t.name: _decode_tag(t, registers, block.start) for t in block.tags}

    async def poll_once(self) -> Sample:
        """Read every block once; never raises, failures become bad-quality readings."""
        ts = time.time()
        readings: dict[str, TagReading] = {}
        try:
            if self._client is None or not self._client.connected:
                await self._connect()
            async with asyncio.timeout(self.plc.timeout_s * max(1, len(self.blocks))):
                for block in self.blocks:
                    readings.update(await self._read_block(block))
        except (_ReadFailed, TimeoutError, OSError) as exc:
            reason = str(exc) or f"no reply within {self.plc.timeout_s} s"
            # After a timeout the connection may still deliver the late reply; drop it so a
            # stale answer can never be taken for the next request.
            self._drop_client()
            self._record_failure(reason)
            readings = {
                t.name: TagReading(math.nan, Quality.BAD, reason) for t in self.plc.tag_map.tags
            }
        else:
            self._record_success()
        self.stats.polls += 1
        return Sample(ts=ts, source=self.name, readings=readings)

    def _record_failure(self, reason: str) -> None:
        self.stats.failures += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = reason
        if self.stats.consecutive_failures == 1:
            log.warning("PLC %s: %s; tags marked bad, retrying with backoff", self.name, reason)
        else:
            log.debug("PLC %s still failing: %s", self.name, reason)

    def _record_success(self) -> None:
        if self.stats.consecutive_failures:
            log.warning(
                "PLC %s recovered after %d failed polls", self.name, self.stats.consecutive_failures
            )
        self.stats.consecutive_failures = 0
        self.stats.last_ok = time.time()
        self._backoff.reset()

    async def run(self, emit: Emit) -> None:
        """Poll on an absolute schedule until cancelled; back off while the PLC is away."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while True:
                sample = await self.poll_once()
                emit(sample)
                if self.stats.consecutive_failures:
                    await asyncio.sleep(self._backoff.next_delay())
                    next_at = loop.time()
                    continue
                next_at += self.plc.poll_interval_s
                now = loop.time()
                if next_at < now:
                    # A slow poll: skip the missed slots instead of bursting to catch up.
                    self.stats.overruns += 1
                    next_at = now
                await asyncio.sleep(next_at - now)
        finally:
            with contextlib.suppress(Exception):
                self._drop_client()


def _decode_tag(tag: Tag, registers: Sequence[int], block_start: int) -> TagReading:
    offset = tag.address - block_start
    raw = decode(registers[offset : offset + tag.registers], tag.dtype, tag.layout)
    value = tag.scaling.to_engineering(raw)
    if not math.isfinite(value):
        return TagReading(value, Quality.UNCERTAIN, f"PLC sent {value} (not a finite number)")
    return TagReading(value, Quality.GOOD)
