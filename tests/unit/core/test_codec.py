"""Register codec: known PLC encodings, every layout, scaling and saturation."""

from __future__ import annotations

import math

import pytest

from agent.core.codec import DataType, Layout, Scaling, decode, encode

# 123456.0 as float32 is 0x47F12000: bytes A=47 B=F1 C=20 D=00
FLOAT_123456 = {
    "ABCD": [0x47F1, 0x2000],
    "CDAB": [0x2000, 0x47F1],
    "BADC": [0xF147, 0x0020],
    "DCBA": [0x0020, 0xF147],
}


@pytest.mark.parametrize(("layout", "registers"), FLOAT_123456.items())
def test_float32_layouts_match_plc_manuals(layout: str, registers: list[int]) -> None:
    parsed = Layout.parse(layout, DataType.FLOAT32)
    assert decode(registers, DataType.FLOAT32, parsed) == 123456.0
    assert encode(123456.0, DataType.FLOAT32, parsed) == registers


def test_int32_word_swap() -> None:
    # -2 as int32 is 0xFFFFFFFE; word-swapped it travels as FFFE FFFF
    layout = Layout.parse("CDAB", DataType.INT32)
    assert decode([0xFFFE, 0xFFFF], DataType.INT32, layout) == -2


@pytest.mark.parametrize("dtype", [t for t in DataType if t.is_numeric])
@pytest.mark.parametrize("byte_swap", [False, True])
@pytest.mark.parametrize("word_swap", [False, True])
def test_round_trip_every_type_and_layout(dtype: DataType, byte_swap: bool, word_swap: bool):
    layout = Layout(byte_swap=byte_swap, word_swap=word_swap)
    value = 3.25 if dtype.is_float else (-1234 if dtype.value[0].islower() else 1234)
    registers = encode(value, dtype, layout)
    assert len(registers) == dtype.registers
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, dtype, layout) == value


def test_nan_decodes_as_nan() -> None:
    assert math.isnan(decode([0x7FC0, 0x0000], DataType.FLOAT32))


def test_wrong_register_count_is_refused() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], DataType.FLOAT32)


def test_unknown_names_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="float32"):
        DataType.parse("flaot32")
    with pytest.raises(ValueError, match="ABCD"):
        Layout.parse("ABDC", DataType.FLOAT32)


def test_scaling_rounds_and_saturates_integers() -> None:
    tenths = Scaling(scale=0.1)
    assert tenths.to_raw(21.57, DataType.INT16) == 216
    assert tenths.to_engineering(216) == pytest.approx(21.6)
    assert tenths.to_raw(1e6, DataType.INT16) == 32767
    assert tenths.to_raw(-5.0, DataType.UINT16) == 0
