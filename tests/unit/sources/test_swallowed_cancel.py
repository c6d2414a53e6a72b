"""A stop that a library swallows mid-read still stops the poll loop.

On Python 3.11 `asyncio.wait_for` returns the reply instead of raising when a cancellation
arrives just as the reply does; pymodbus awaits every reply that way. The transport below
(behind our own `ModbusTransport` interface) swallows every cancellation the same way, so
without `raise_if_cancelled` the hub's poll loop would never end and the agent's drain would
run into its stop budget. The real-server path is tests/integration/runtime/test_daemon.py's drain.
"""

from __future__ import annotations

import asyncio

import pytest

from agent.sources.base import raise_if_cancelled
from agent.sources.modbus import ModbusHub
from agent.types import Sample
from tests.plc_configs import modbus_plc_config


class SwallowingTransport:
    """Answers every read, and swallows the first cancellation that arrives during one."""

    description = "swallowing test transport"

    def __init__(self) -> None:
        self.reads = 0
        self.swallowed = 0

    @property
    def connected(self) -> bool:
        """Always open."""
        return True

    async def connect(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""

    async def _reply(self) -> None:
        self.reads += 1
        try:
            await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1  # what 3.11's wait_for does when the reply lands with the cancel

    async def read_registers(self, unit: int, table: str, start: int, count: int) -> list[int]:
        """`count` zero registers."""
        await self._reply()
        return [0] * count

    async def read_bits(self, unit: int, table: str, start: int, count: int) -> list[bool]:
        """`count` false bits."""
        await self._reply()
        return [False] * count


async def test_a_cancellation_swallowed_inside_a_read_still_stops_the_hub() -> None:
    transport = SwallowingTransport()
    hub = ModbusHub(modbus_plc_config(port=1, timeout=1.0, poll_s=0.001), transport)
    samples: list[Sample] = []
    task = asyncio.create_task(hub.run(samples.append))
    while transport.reads < 5:
        await asyncio.sleep(0.001)
    # Cancel while a read is in flight, so the transport swallows it.
    while True:
        await asyncio.sleep(0.001)
        if transport.reads > 5:
            task.cancel()
            break
    # Without the guard the poll task never ends, and its TaskGroup does not cancel it twice:
    # the assertion fails, and the test's timeout then ends the stuck loop.
    done, _ = await asyncio.wait({task}, timeout=2.0)
    assert task in done, "the poll loop went on after its cancellation was swallowed"
    assert transport.swallowed == 1 and task.cancelled()
    assert samples  # it did poll before the stop


async def test_raise_if_cancelled_is_quiet_after_a_timeout_and_outside_a_task() -> None:
    # asyncio.timeout takes its own cancellation back (uncancel): not a stop.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)
    raise_if_cancelled()
