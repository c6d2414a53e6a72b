"""The vectorised block decode against the scalar one, tag by tag, over every type and order.

`decode_tag` (one tag at a time through `struct`) is the reference; `BlockReadings` (one numpy
gather and a view per type) must give the same reading for every tag: the same number to the
bit, the same quality and reason, for random registers and for the awkward ones (NaN and
infinity patterns, extremes, values outside `range`).
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from agent.config import Tag
from agent.core.codec import BlockDecoder, BlockField, DataType, Layout, Scaling
from agent.sources.blocks import plan_blocks
from agent.sources.decoding import BlockReadings
from agent.sources.modbus import decode_tag
from agent.types import Quality

ORDERS = {1: ["AB", "BA"], 2: ["ABCD", "CDAB", "BADC", "DCBA"],
          4: ["ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA"]}  # fmt: skip
NUMERIC = [t for t in DataType if t.is_numeric]


def every_kind() -> list[Tag]:
    """One tag of every numeric type in every layout, scaled, some with a range; two bits of a
    register and a string between them."""
    tags: list[Tag] = []
    address = 0
    for dtype in NUMERIC:
        for order in ORDERS[dtype.registers]:
            scaling = Scaling(0.1, -5.0) if len(tags) % 2 else Scaling()
            eu_range = (0.0, 100.0) if len(tags) % 3 == 0 else None
            name = f"{dtype.name.lower()}_{order}"
            tags.append(Tag(name, "holding", address, dtype, Layout.parse(order, dtype), scaling,
                            "", "", eu_range=eu_range))  # fmt: skip
            address += dtype.registers
    tags.append(Tag("bit3", "holding", address, DataType.BOOL, Layout(), Scaling(), "", "", bit=3))
    tags.append(Tag("label", "holding", address + 1, DataType.STRING, Layout(), Scaling(), "", "",
                    length=6))  # fmt: skip
    tags.append(Tag("after", "holding", address + 4, DataType.FLOAT32, Layout(), Scaling(2.0),
                    "", ""))  # fmt: skip
    return tags


def same(a: float, b: float) -> bool:
    """Equal to the bit, NaN equal to NaN."""
    return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))


def assert_same_readings(tags: list[Tag], registers: list[int]) -> None:
    """Every block's vectorised readings equal the scalar decode of each of its tags."""
    for block in plan_blocks(tags, max_gap=0, max_registers=125):
        words = registers[block.start : block.start + block.count]
        got = BlockReadings(block).readings(words)
        assert list(got) == [t.name for t in block.tags]  # the tag map's order
        for tag in block.tags:
            want = decode_tag(tag, words, block.start)
            have = got[tag.name]
            assert same(have.value, want.value), (tag.name, have, want)
            assert (have.quality, have.reason, have.text) == (want.quality, want.reason,
                                                              want.text), tag.name  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_random_registers_decode_as_the_scalar_path_does(seed: int) -> None:
    tags = every_kind()
    rng = np.random.default_rng(seed)
    registers = rng.integers(0, 65536, size=200).tolist()
    assert_same_readings(tags, registers)


@pytest.mark.parametrize("word", [0x0000, 0xFFFF, 0x7FFF, 0x8000, 0x7FC0, 0x7F80, 0xFF80, 0x0001])
def test_awkward_patterns_decode_as_the_scalar_path_does(word: int) -> None:
    """NaN, infinities, the extremes of every integer type, the smallest numbers."""
    tags = every_kind()
    for low in (0x0000, 0xFFFF, 0x0001):
        registers = [word if i % 2 == 0 else low for i in range(200)]
        assert_same_readings(tags, registers)
        assert_same_readings(tags, [*registers[1:], 0])  # the other half of each value


def test_nan_and_out_of_range_are_judged_with_their_reasons() -> None:
    a = Tag("a", "holding", 0, DataType.FLOAT32, Layout(), Scaling(), "", "", eu_range=(0, 10))
    b = Tag("b", "holding", 2, DataType.FLOAT32, Layout(), Scaling(), "", "", eu_range=(0, 10))
    c = Tag("c", "holding", 4, DataType.INT16, Layout(), Scaling(0.1), "", "", eu_range=(0, 10))
    (block,) = plan_blocks([a, b, c])
    nan = [0x7FC0, 0x0000]
    big = list(struct.unpack(">2H", struct.pack(">f", 500.0)))
    got = BlockReadings(block).readings([*nan, *big, 55])
    assert got["a"].quality is Quality.BAD and "not a finite number" in got["a"].reason
    assert got["b"].quality is Quality.UNCERTAIN and "outside its range" in got["b"].reason
    assert got["c"].quality is Quality.GOOD and got["c"].value == pytest.approx(5.5)


def test_the_decoder_refuses_what_it_cannot_decode() -> None:
    with pytest.raises(ValueError, match="decodes numbers"):
        BlockDecoder([BlockField(0, DataType.STRING)])
    decoder = BlockDecoder([BlockField(0, DataType.FLOAT64)])
    with pytest.raises(ValueError, match="needs 4 registers, got 2"):
        decoder.decode([0, 0])


def test_every_reading_carries_the_polls_time() -> None:
    tags = every_kind()
    (block,) = plan_blocks(tags, max_gap=0, max_registers=125)
    registers = [0xFFFF] * block.count  # every float a NaN, every integer -1 or its maximum
    got = BlockReadings(block).readings(registers, ts=1234.5)
    assert {r.ts for r in got.values()} == {1234.5}
    assert any(r.quality is Quality.BAD for r in got.values())
