"""Modbus TCP through pymodbus's async client, with its own retries and reconnects switched off.

pymodbus matches replies to requests by the MBAP transaction id, but it takes a reply with
transaction id 0 for the answer to any request: a peer that answers 0 one reply behind would
hand us the previous poll's values as good. Our requests never carry 0 (pymodbus numbers them
from 1), so we check the id of every answer ourselves, 0 included, and a mismatch drops the
connection (the peer is out of step; a new connection starts both ends afresh). On top of
that we check the function code and the count of every answer.
"""

from __future__ import annotations

import asyncio

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from agent.sources.transport import (
    READ_FUNCTION,
    ExceptionReply,
    LinkError,
    describe_request,
)


class PymodbusTcpTransport:
    """A Modbus TCP connection to one endpoint (a PLC, or a gateway with several units)."""

    def __init__(self, host: str, port: int, timeout_s: float, name: str = "") -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.description = f"modbus-tcp {host}:{port}"
        self._name = name or self.description
        self._client: AsyncModbusTcpClient | None = None

    @property
    def connected(self) -> bool:
        """True while the TCP connection is open."""
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the TCP connection under the timeout."""
        self.close()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout_s,
            retries=0,  # a retry is the hub's decision, on its schedule
            reconnect_delay=0,  # 0 disables pymodbus's background reconnect (up to 300 s)
            name=self._name,
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                ok = await client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            client.close()
            raise LinkError(
                f"connect to {self.host}:{self.port} failed: {str(exc) or 'no answer in time'}",
                link_down=True,
            ) from exc
        if not ok:
            client.close()
            why = await self._connect_error()
            raise LinkError(f"connect to {self.host}:{self.port} failed: {why}", link_down=True)
        self._client = client

    async def _connect_error(self) -> str:
        """Why a connect failed: pymodbus only logs the OSError (errno) and returns False, so
        one plain TCP connect under the same timeout asks the network again."""
        try:
            async with asyncio.timeout(self.timeout_s):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            return f"no answer within {self.timeout_s} s"
        except OSError as exc:
            return str(exc)
        writer.close()  # it answers now: the refusal was a moment ago
        return "refused or unreachable"

    def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _read(self, unit: int, table: str, start: int, count: int):  # type: ignore[no-untyped-def]
        client = self._client
        request = describe_request(unit, table, start, count)
        if client is None or not client.connected:
            raise LinkError(f"{request}: not connected", link_down=True)
        call = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[table]
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the reply, and the hub would then never stop.
            async with asyncio.timeout(self.timeout_s * 1.5):
                response = await call(start, count=count, device_id=unit)
        except TimeoutError as exc:
            raise LinkError(
                f"{request}: no reply within {self.timeout_s} s", link_down=False
            ) from exc
        except ConnectionException as exc:
            raise LinkError(f"{request}: {exc}", link_down=True) from exc
        except ModbusIOException as exc:
            # No reply in time, or a reply that did not match: the connection stays usable.
            what = f"no reply within {self.timeout_s} s" if "No response" in str(exc) else exc
            raise LinkError(f"{request}: {what}", link_down=not client.connected) from exc
        except (ModbusException, OSError) as exc:
            raise LinkError(f"{request}: {exc}", link_down=True) from exc
        sent = _request_tid(client)
        if response.transaction_id == 0 or (sent is not None and response.transaction_id != sent):
            raise LinkError(
                f"{request}: answer carries transaction id {response.transaction_id}, "
                f"not the request's {sent if sent is not None else '(non-zero)'}",
                link_down=True,
            )
        if response.isError():
            raise ExceptionReply(getattr(response, "exception_code", 0), request)
        expected = READ_FUNCTION[table]
        if response.function_code != expected:
            raise LinkError(
                f"{request}: answer has function code {response.function_code}, not {expected}",
                link_down=False,
            )
        return response

    async def read_registers(self, unit: int, table: str, start: int, count: int) -> list[int]:
        """Read holding or input registers."""
        response = await self._read(unit, table, start, count)
        registers = list(response.registers)
        if len(registers) != count:
            raise LinkError(
                f"{describe_request(unit, table, start, count)}: short reply, "
                f"{len(registers)} of {count} registers",
                link_down=False,
            )
        return registers

    async def read_bits(self, unit: int, table: str, start: int, count: int) -> list[bool]:
        """Read coils or discrete inputs (pymodbus pads to whole bytes; the padding is cut)."""
        response = await self._read(unit, table, start, count)
        bits = list(response.bits)
        if len(bits) < count:
            raise LinkError(
                f"{describe_request(unit, table, start, count)}: short reply, "
                f"{len(bits)} of {count} bits",
                link_down=False,
            )
        return [bool(b) for b in bits[:count]]


def _request_tid(client: AsyncModbusTcpClient) -> int | None:
    """The transaction id pymodbus put on the request just answered (None if it hides it)."""
    tid = getattr(getattr(client, "ctx", None), "request_transaction_id", None)
    return tid if isinstance(tid, int) else None
