"""Merge the tags of one device into the fewest legal Modbus reads. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import MAX_REGISTERS_PER_READ, Tag


@dataclass(frozen=True)
class Block:
    """One read request: a register table, a start address, a count, and the tags inside."""

    table: str
    start: int
    count: int
    tags: tuple[Tag, ...]


def plan_blocks(
    tags: Sequence[Tag], max_gap: int = 8, max_count: int = MAX_REGISTERS_PER_READ
) -> list[Block]:
    """Group tags into blocks; read across gaps of up to `max_gap` unused registers.

    Examples
    --------
    >>> from agent.config import Tag
    >>> from agent.sources.codec import DataType, Layout, Scaling
    >>> def tag(name, address):
    ...     return Tag(name, "holding", address, DataType.FLOAT32, Layout(), Scaling(), "", "")
    >>> [(b.start, b.count) for b in plan_blocks([tag("a", 0), tag("b", 2), tag("c", 40)])]
    [(0, 4), (40, 2)]
    """
    blocks: list[Block] = []
    for table in sorted({t.table for t in tags}):
        ordered = sorted((t for t in tags if t.table == table), key=lambda t: t.address)
        current: list[Tag] = []
        start = end = 0
        for tag in ordered:
            tag_end = tag.address + tag.registers
            if current and tag.address - end <= max_gap and tag_end - start <= max_count:
                current.append(tag)
                end = max(end, tag_end)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [tag], tag.address, tag_end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks
