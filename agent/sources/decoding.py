"""The readings of one register block: its numeric tags decoded in one numpy step.

Built once per block from the tag map (`BlockReadings(block)`), then applied to every answer:
the numeric tags go through one `BlockDecoder` (a byte gather, a view per data type, scale
and offset as arrays) and the quality policy's two tests (finite, inside `range` with its
margin) run over the whole array; only a value that fails them is judged alone, for its
reason. Bits of a register and strings are few and keep the scalar path. The readings equal
`decode_tag`'s tag by tag (tests/unit/sources/test_block_readings.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from agent.config import Tag
from agent.core.codec import BlockDecoder, BlockField, DataType, decode_bit, decode_string
from agent.core.quality import RANGE_MARGIN, judge
from agent.sources.blocks import Block
from agent.types import Quality, TagReading, good_reading


class BlockReadings:
    """Turns the registers of one block into its tags' readings."""

    def __init__(self, block: Block) -> None:
        self.block = block
        kinds = list(DataType)  # grouped by type, so that each type decodes into a slice
        numeric = [t for t in block.tags if t.dtype.is_numeric]
        self._numeric = sorted(numeric, key=lambda t: kinds.index(t.dtype))
        self._others = [t for t in block.tags if not t.dtype.is_numeric]
        self._names = [t.name for t in self._numeric]
        self._reorder = bool(self._others) or self._names != [t.name for t in numeric]
        self._decoder = BlockDecoder(
            [
                BlockField(t.address - block.start, t.dtype, t.layout, t.scaling)
                for t in self._numeric
            ]
        )
        low = np.full(len(self._numeric), -np.inf)
        high = np.full(len(self._numeric), np.inf)
        for i, tag in enumerate(self._numeric):
            if tag.eu_range is not None:
                lo, hi = tag.eu_range
                margin = RANGE_MARGIN * (hi - lo)  # the same arithmetic as quality.plausible
                low[i], high[i] = lo - margin, hi + margin
        self._low, self._high = low, high

    def readings(self, registers: Sequence[int], ts: float | None = None) -> dict[str, TagReading]:
        """Every tag of the block from its registers, under the quality policy, each stamped
        with `ts` (the poll's time; None: the sample's, stamped later)."""
        values = self._decoder.decode(registers)
        suspect = ~(np.isfinite(values) & (values >= self._low) & (values <= self._high))
        result = {
            name: good_reading(value, ts)
            for name, value, bad in zip(self._names, values.tolist(), suspect.tolist(), strict=True)
            if not bad
        }
        if suspect.any():
            for i in np.flatnonzero(suspect).tolist():
                tag = self._numeric[i]
                result[tag.name] = replace(judge(float(values[i]), tag.eu_range), ts=ts)
        for tag in self._others:
            result[tag.name] = replace(_scalar_reading(tag, registers, self.block.start), ts=ts)
        if self._reorder or suspect.any():
            result = {t.name: result[t.name] for t in self.block.tags}  # the tag map's order
        return result


def _scalar_reading(tag: Tag, registers: Sequence[int], block_start: int) -> TagReading:
    """A bit of a register or a string: decoded alone."""
    offset = tag.address - block_start
    words = registers[offset : offset + tag.span]
    if tag.dtype is DataType.BOOL:
        assert tag.bit is not None
        return TagReading(1.0 if decode_bit(words[0], tag.bit) else 0.0)
    return TagReading(math.nan, Quality.GOOD, text=decode_string(words, tag.length, tag.layout))
