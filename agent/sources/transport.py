"""The interface between a Modbus hub and the wire: one request, one verified answer.

A transport speaks one framing (Modbus TCP, RTU over a serial port, RTU over TCP) and raises
exactly two kinds of error, which the hub maps onto tag quality:

- `ExceptionReply`: the device answered with a Modbus exception (illegal address, busy, ...).
  The link is fine; only the tags of that request are bad.
- `LinkError`: no usable answer (refused, timeout, short, garbled or mismatched frame).
  `link_down` says whether the connection itself is gone (reconnect with backoff) or only this
  device failed to answer (on a shared bus the other devices carry on).

An answer is returned only after it was checked to belong to the request: unit id, function
code and byte count (and CRC on RTU). A late reply must never be taken for the next answer.
"""

from __future__ import annotations

from typing import Protocol

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

# Function codes by table.
READ_FUNCTION = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


class ExceptionReply(Exception):
    """The device answered a request with a Modbus exception code."""

    def __init__(self, code: int, request: str) -> None:
        self.code = code
        self.request = request
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(f"PLC answered exception {code} ({name}) to {request}")


class LinkError(Exception):
    """No usable answer; `link_down` if the connection itself must be re-established."""

    def __init__(self, reason: str, *, link_down: bool) -> None:
        self.link_down = link_down
        super().__init__(reason)


class ModbusTransport(Protocol):
    """One connection to the plant floor that can carry Modbus read requests."""

    description: str

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        ...

    async def connect(self) -> None:
        """Open the connection; raise LinkError(link_down=True) if it cannot be opened."""
        ...

    def close(self) -> None:
        """Close the connection (idempotent)."""
        ...

    async def read_registers(self, unit: int, table: str, start: int, count: int) -> list[int]:
        """Read `count` holding or input registers; verified against the request."""
        ...

    async def read_bits(self, unit: int, table: str, start: int, count: int) -> list[bool]:
        """Read `count` coils or discrete inputs; verified against the request."""
        ...


def describe_request(unit: int, table: str, start: int, count: int) -> str:
    """A request in words for error messages: `unit 3 holding 100+10`."""
    return f"unit {unit} {table} {start}+{count}"
