"""Merge the tags of one device into the fewest legal Modbus reads. Pure.

Tags of one table are sorted by address and merged while the gap of unused addresses between
them is at most `max_gap` and the block stays within the per-request limit: 125 registers for
holding/input, 2000 bits for coils/discrete inputs (Modbus application protocol, 6.1-6.4), or
less where a device documents a smaller limit. Several bool tags on bits of one register share
that register in the read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ, Tag


@dataclass(frozen=True)
class Block:
    """One read request: a table, a start address, a count, and the tags inside."""

    table: str
    start: int
    count: int
    tags: tuple[Tag, ...]


def plan_blocks(
    tags: Sequence[Tag],
    max_gap: int = 8,
    max_registers: int = MAX_REGISTERS_PER_READ,
    max_bits: int = MAX_BITS_PER_READ,
) -> list[Block]:
    """Group tags into blocks, table by table, in address order.

    Examples
    --------
    >>> from agent.config import Tag
    >>> from agent.core.codec import DataType, Layout, Scaling
    >>> def tag(name, address):
    ...     return Tag(name, "holding", address, DataType.FLOAT32, Layout(), Scaling(), "", "")
    >>> [(b.start, b.count) for b in plan_blocks([tag("a", 0), tag("b", 2), tag("c", 40)])]
    [(0, 4), (40, 2)]
    """
    blocks: list[Block] = []
    for table in sorted({t.table for t in tags}):
        limit = max_bits if table in ("coil", "discrete") else max_registers
        ordered = sorted((t for t in tags if t.table == table), key=lambda t: t.address)
        current: list[Tag] = []
        start = end = 0
        for tag in ordered:
            if tag.span > limit:
                raise ValueError(f"tag {tag.name} spans {tag.span}, more than one read ({limit})")
            tag_end = tag.address + tag.span
            if current and tag.address - end <= max_gap and max(end, tag_end) - start <= limit:
                current.append(tag)
                end = max(end, tag_end)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [tag], tag.address, tag_end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks


def naive_requests(tags: Sequence[Tag]) -> int:
    """How many requests a poller that reads tag by tag would send (for comparison)."""
    return len({(t.table, t.address) for t in tags})
