"""An in-memory Modbus device behind the `ModbusTransport` interface, shipped for tests.

httpx ships `MockTransport` so that code above the transport is tested without a network;
this is the same for a Modbus hub. It holds registers and bits per unit and table, answers
reads from them, raises `ExceptionReply` for an address it does not hold (illegal data
address, as a PLC does), and can be told to fail: `link_down()` drops the connection until
`link_up()`, `fail_next(error)` raises one error at the next read. Every request is logged in
`requests`. The real peers (pymodbus and libmodbus servers, a socat pty pair) are tested
beside it in tests/integration/sources/.

>>> import asyncio
>>> fake = FakeTransport({(1, "holding"): {0: 1234, 1: 5678}})
>>> asyncio.run(fake.connect()); asyncio.run(fake.read_registers(1, "holding", 0, 2))
[1234, 5678]
>>> try:
...     asyncio.run(fake.read_registers(1, "holding", 1, 2))
... except ExceptionReply as exc:
...     print(exc)
PLC answered exception 2 (illegal data address) to unit 1 holding 1+2
"""

from __future__ import annotations

from agent.sources.transport import ExceptionReply, LinkError, describe_request

ILLEGAL_DATA_ADDRESS = 2
#: (unit, table) -> address -> value: registers as ints 0..65535, bits as bools.
Memory = dict[tuple[int, str], dict[int, int | bool]]


class FakeTransport:
    """Answers Modbus reads from memory; fails on request."""

    description = "in-memory fake Modbus device"

    def __init__(self, memory: Memory | None = None) -> None:
        self.memory: Memory = memory if memory is not None else {}
        self.requests: list[tuple[int, str, int, int]] = []
        self.connects = 0
        self._open = False
        self._up = True
        self._next_error: Exception | None = None

    @property
    def connected(self) -> bool:
        """True while the (pretend) connection is open."""
        return self._open

    async def connect(self) -> None:
        """Open, unless the link is down."""
        if not self._up:
            raise LinkError(f"{self.description}: connection refused", link_down=True)
        self._open = True
        self.connects += 1

    def close(self) -> None:
        """Close (idempotent)."""
        self._open = False

    def link_down(self) -> None:
        """Drop the connection; connecting fails until `link_up`."""
        self._up = self._open = False

    def link_up(self) -> None:
        """Let the next connect succeed."""
        self._up = True

    def fail_next(self, error: Exception) -> None:
        """Raise `error` at the next read, once."""
        self._next_error = error

    def _read(self, unit: int, table: str, start: int, count: int) -> list[int | bool]:
        self.requests.append((unit, table, start, count))
        request = describe_request(unit, table, start, count)
        if not self._open:
            raise LinkError(f"{request}: not connected", link_down=True)
        if self._next_error is not None:
            error, self._next_error = self._next_error, None
            if isinstance(error, LinkError) and error.link_down:
                self._open = False
            raise error
        held = self.memory.get((unit, table), {})
        try:
            return [held[a] for a in range(start, start + count)]
        except KeyError:
            raise ExceptionReply(ILLEGAL_DATA_ADDRESS, request) from None

    async def read_registers(self, unit: int, table: str, start: int, count: int) -> list[int]:
        """`count` registers from memory."""
        return [int(v) for v in self._read(unit, table, start, count)]

    async def read_bits(self, unit: int, table: str, start: int, count: int) -> list[bool]:
        """`count` bits from memory."""
        return [bool(v) for v in self._read(unit, table, start, count)]
