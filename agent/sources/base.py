"""The source protocol: something that reads a PLC on its own schedule and emits samples."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from agent.ops.comms import PlcStatus
from agent.types import Sample

Emit = Callable[[Sample], None]


class Source(Protocol):
    """A PLC connection. `run` never returns until cancelled and never raises a read error:
    a failed read is emitted as bad-quality readings with the reason, and each poll's outcome
    feeds `status` (agent.ops.comms), whose edges are the comms alarms."""

    name: str
    status: PlcStatus

    async def run(self, emit: Emit) -> None:
        """Poll forever, calling `emit` (which never blocks) with each sample."""
        ...


def raise_if_cancelled() -> None:
    """Raise CancelledError if this task was cancelled but the cancellation got lost.

    On Python 3.11, `asyncio.wait_for` returns the result instead of raising when a
    cancellation arrives just as the awaited reply does. pymodbus awaits every reply that
    way, so a stop could be swallowed in the middle of a read, and a poll loop would go on
    forever, holding up the agent's drain until the stop budget ran out. The task still counts
    the cancellation (`cancelling()`), so every poll loop checks it once per round.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
