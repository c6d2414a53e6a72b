"""The source protocol: something that reads a PLC on its own schedule and emits samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from agent.types import Sample

Emit = Callable[[Sample], None]


class Source(Protocol):
    """A PLC connection. `run` never returns until cancelled and never raises a read error:
    a failed read is emitted as bad-quality readings with the reason."""

    name: str

    async def run(self, emit: Emit) -> None:
        """Poll forever, calling `emit` (which never blocks) with each sample."""
        ...
