"""The simulated line behind a real Modbus TCP server (pymodbus), updated on a fixed clock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from agent.config import TagMap, load_tag_map
from agent.core.codec import encode
from agent.demo.simulator.process import SIGNAL_NAMES, ExtrusionLine
from agent.paths import firmware_configs

HOLDING_READ = 3
REGISTER_SPACE = 64  # registers 0..63 exist; anything above answers "illegal address"

log = logging.getLogger(__name__)


def default_tag_map() -> Path:
    """The simulator's register map in firmware-configs/."""
    return firmware_configs() / "plc" / "simulated-extruder.toml"


@dataclass(frozen=True)
class Tick:
    """One process update as the PLC published it: wall time, line time and values."""

    wall: float
    line_t: float
    values: np.ndarray


class SimulatedPlc:
    """Serves the line's signals as holding registers and steps the process on a clock.

    `period_s` is wall-clock seconds per process step; the line advances `line.dt` seconds of
    line time per step, so `line.dt / period_s` is the speed-up.
    """

    def __init__(
        self,
        line: ExtrusionLine,
        *,
        host: str = "127.0.0.1",
        port: int = 5020,
        unit: int = 1,
        period_s: float = 1.0,
        tag_map: TagMap | None = None,
        on_tick: Callable[[Tick], None] | None = None,
    ) -> None:
        self.line = line
        self.host = host
        self.port = port
        self.unit = unit
        self.period_s = period_s
        self.tag_map = tag_map or load_tag_map(default_tag_map())
        self.on_tick = on_tick
        self.heartbeat = 0
        self._tags = {t.name: t for t in self.tag_map.tags}
        missing = [s for s in SIGNAL_NAMES if s not in self._tags]
        if missing:
            raise ValueError(f"tag map {self.tag_map.path} lacks simulator signals {missing}")
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        """Listen on the TCP port and publish the first values."""
        device = SimDevice(
            id=self.unit,
            simdata=[SimData(0, count=REGISTER_SPACE, values=0, datatype=SimDataType.REGISTERS)],
        )
        # pymodbus binds the server to the running loop at construction, so build it here.
        self._server = ModbusTcpServer(device, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        await self._publish(self.line.step())

    async def stop(self) -> None:
        """Close the server and every client connection."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def run(self) -> None:
        """Step the process every `period_s` on an absolute schedule (no drift)."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.period_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            await self._publish(self.line.step())

    async def _publish(self, values: np.ndarray) -> None:
        self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        registers = [0] * REGISTER_SPACE
        for name, value in zip(SIGNAL_NAMES, values, strict=True):
            tag = self._tags[name]
            raw = tag.scaling.to_raw(float(value), tag.dtype)
            words = encode(raw, tag.dtype, tag.layout)
            registers[tag.address : tag.address + len(words)] = words
        if "heartbeat" in self._tags:
            registers[self._tags["heartbeat"].address] = self.heartbeat
        if self._server is None:
            return
        await self._server.async_setValues(self.unit, HOLDING_READ, 0, registers)
        if self.on_tick is not None:
            self.on_tick(Tick(wall=time.time(), line_t=self.line.t, values=values))
