"""A Modbus TCP peer written by hand on asyncio, for faults no real server makes on purpose:
it answers holding-register reads from `registers`, and can hang (read, never answer) or answer
with transaction id 0 one reply behind, as a broken gateway does."""

from __future__ import annotations

import asyncio
import struct
from contextlib import suppress


class MbapPeer:
    """Serves function 3 from `registers`; `mode` is "ok", "hang" or "tid0-behind"; every
    answer waits `delay_s` first (a slow PLC)."""

    def __init__(self, registers: list[int], mode: str = "ok", delay_s: float = 0.0) -> None:
        self.registers = registers
        self.mode = mode
        self.delay_s = delay_s
        self.port = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._previous: bytes | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> None:
        """Listen on loopback (`port` 0: any free one, kept in `self.port`)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    def _answer(self, start: int, count: int) -> bytes:
        words = self.registers[start : start + count]
        return bytes([3, 2 * count]) + struct.pack(f">{count}H", *words)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                self.requests += 1
                function, start, count = struct.unpack(">BHH", pdu[:5])
                if self.mode == "hang" or function != 3:
                    continue
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                body = self._answer(start, count)
                if self.mode == "tid0-behind":
                    body, self._previous = self._previous or body, body
                    tid = 0
                writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
