"""Property tests of the register codec: every type, every layout, the awkward values.

The expected register contents are computed here from `struct` and the layout definition in the
codec's docstring (swap the bytes of every register, reverse the register order), not from the
codec itself, so a round trip that is consistently wrong in both directions still fails.
"""

from __future__ import annotations

import math
import struct
from typing import Literal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.core.codec import (
    DataType,
    Layout,
    Scaling,
    decode,
    decode_bit,
    decode_string,
    encode,
    encode_string,
    string_registers,
)

FAST = settings(max_examples=40, deadline=None)

# struct format and register count, written out here rather than taken from DataType.value
FORMATS = {
    DataType.INT16: ("h", 1),
    DataType.UINT16: ("H", 1),
    DataType.INT32: ("i", 2),
    DataType.UINT32: ("I", 2),
    DataType.INT64: ("q", 4),
    DataType.UINT64: ("Q", 4),
    DataType.FLOAT32: ("f", 2),
    DataType.FLOAT64: ("d", 4),
}
INTEGERS = [t for t in FORMATS if not t.is_float]
FLOATS = [DataType.FLOAT32, DataType.FLOAT64]
# name -> (byte swap inside each register, reverse the register order)
LAYOUTS = {
    1: {"AB": (False, False), "BA": (True, False)},
    2: {"ABCD": (False, False), "CDAB": (False, True), "BADC": (True, False), "DCBA": (True, True)},
    4: {
        "ABCDEFGH": (False, False),
        "GHEFCDAB": (False, True),
        "BADCFEHG": (True, False),
        "HGFEDCBA": (True, True),
    },
}
CASES = [
    (dtype, name)
    for dtype, (_, count) in FORMATS.items()
    for name in LAYOUTS[count]
]  # fmt: skip


def limits(dtype: DataType) -> tuple[int, int]:
    fmt, count = FORMATS[dtype]
    bits = 16 * count
    if fmt.islower():
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def big_endian_words(value: float | int, dtype: DataType) -> list[int]:
    fmt, count = FORMATS[dtype]
    return list(struct.unpack(f">{count}H", struct.pack(f">{fmt}", value)))


def arrange(words: list[int], name: str) -> list[int]:
    """Big-endian words as they travel in layout `name`."""
    byte_swap, reverse = LAYOUTS[len(words)][name]
    out = [((w & 0xFF) << 8) | (w >> 8) for w in words] if byte_swap else list(words)
    return out[::-1] if reverse else out


def same_float(a: float, b: float) -> bool:
    """Equal, and the same zero (0.0 vs -0.0 matters to a PLC that divides by it)."""
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "name"), [c for c in CASES if not c[0].is_float])
@FAST
@given(data=st.data())
def test_integers_round_trip_in_every_layout(
    dtype: DataType, name: str, data: st.DataObject
) -> None:
    low, high = limits(dtype)
    value = data.draw(st.one_of(st.sampled_from([low, high, 0, -1 if low else 1]),
                                st.integers(low, high)))  # fmt: skip
    layout = Layout.parse(name, dtype)

    registers = encode(value, dtype, layout)

    assert registers == arrange(big_endian_words(value, dtype), name)
    assert all(0 <= r <= 0xFFFF for r in registers)
    decoded = decode(registers, dtype, layout)
    assert decoded == value
    assert isinstance(decoded, int)


@pytest.mark.parametrize(("dtype", "name"), [c for c in CASES if c[0].is_float])
@FAST
@given(data=st.data())
def test_floats_round_trip_in_every_layout(dtype: DataType, name: str, data: st.DataObject) -> None:
    width: Literal[32, 64] = 32 if dtype is DataType.FLOAT32 else 64
    # zeros, infinities, smallest and largest subnormal, smallest normal, largest finite
    mantissa = 23 if width == 32 else 52
    emin = -126 if width == 32 else -1022
    tiny = [2.0 ** (emin - mantissa), (1 - 2.0**-mantissa) * 2.0**emin, 2.0**emin]
    largest = (2 - 2.0**-mantissa) * 2.0 ** (-emin + 1)
    special = [0.0, -0.0, math.inf, -math.inf, largest, -largest, *tiny, *(-t for t in tiny)]
    value = data.draw(st.one_of(st.sampled_from(special), st.floats(width=width, allow_nan=False)))
    layout = Layout.parse(name, dtype)

    registers = encode(value, dtype, layout)

    assert registers == arrange(big_endian_words(value, dtype), name)
    assert same_float(decode(registers, dtype, layout), value)


def _quiet_nan_bits(width: int) -> st.SearchStrategy[int]:
    """Bit patterns of quiet NaNs: exponent all ones, top mantissa bit set, any sign/payload."""
    if width == 32:
        return st.builds(
            lambda sign, payload: (sign << 31) | 0x7FC00000 | payload,
            st.integers(0, 1),
            st.integers(0, (1 << 22) - 1),
        )
    return st.builds(
        lambda sign, payload: (sign << 63) | 0x7FF8000000000000 | payload,
        st.integers(0, 1),
        st.integers(0, (1 << 51) - 1),
    )


@pytest.mark.parametrize(("dtype", "name"), [c for c in CASES if c[0].is_float])
@FAST
@given(data=st.data())
def test_quiet_nan_keeps_its_bit_pattern(dtype: DataType, name: str, data: st.DataObject) -> None:
    width = 32 if dtype is DataType.FLOAT32 else 64
    bits = data.draw(_quiet_nan_bits(width))
    count = width // 16
    words = [(bits >> (16 * (count - 1 - i))) & 0xFFFF for i in range(count)]
    registers = arrange(words, name)
    layout = Layout.parse(name, dtype)

    value = decode(registers, dtype, layout)

    assert math.isnan(value)
    assert encode(value, dtype, layout) == registers


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinities_round_trip(dtype: DataType, value: float) -> None:
    for name in LAYOUTS[FORMATS[dtype][1]]:
        layout = Layout.parse(name, dtype)
        assert decode(encode(value, dtype, layout), dtype, layout) == value


def _is_signaling_nan(words: list[int], dtype: DataType) -> bool:
    if dtype is DataType.FLOAT32:
        bits = (words[0] << 16) | words[1]
        exponent, mantissa = bits & 0x7F800000, bits & 0x7FFFFF
        return exponent == 0x7F800000 and bool(mantissa) and not mantissa >> 22
    if dtype is DataType.FLOAT64:
        bits = (words[0] << 48) | (words[1] << 32) | (words[2] << 16) | words[3]
        mantissa = bits & ((1 << 52) - 1)
        return (bits >> 52) & 0x7FF == 0x7FF and bool(mantissa) and not mantissa >> 51
    return False


@pytest.mark.parametrize(("dtype", "name"), CASES)
@FAST
@given(data=st.data())
def test_any_registers_decode_and_encode_back(
    dtype: DataType, name: str, data: st.DataObject
) -> None:
    """What a PLC sends decodes to a value that encodes to the same registers (no lossy path).

    Signaling NaNs are left out: a float32 one turns quiet on its way through a Python float.
    """
    count = FORMATS[dtype][1]
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count))
    if _is_signaling_nan(words, dtype):
        return
    registers = arrange(words, name)
    layout = Layout.parse(name, dtype)

    value = decode(registers, dtype, layout)

    expected = struct.unpack(f">{FORMATS[dtype][0]}", struct.pack(f">{count}H", *words))[0]
    assert (math.isnan(value) and math.isnan(expected)) or value == expected
    assert encode(value, dtype, layout) == registers


# --- strings ----------------------------------------------------------------------------------

ASCII = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=48)


@pytest.mark.parametrize("name", ["AB", "BA"])
@FAST
@given(text=ASCII, length=st.integers(1, 40))
@example(text="AB  ", length=4)  # trailing spaces go
@example(text="A\0B", length=4)  # cut at the first NUL
@example(text="ABC", length=3)  # odd length: last register half used
@example(text="", length=1)
def test_strings_round_trip_with_nul_and_space_semantics(name: str, text: str, length: int) -> None:
    layout = Layout.parse(name, DataType.STRING)

    registers = encode_string(text, length, layout)

    assert len(registers) == string_registers(length) == (length + 1) // 2
    assert all(0 <= r <= 0xFFFF for r in registers)
    expected = text.encode("ascii")[:length].split(b"\0", 1)[0].decode("ascii").rstrip(" ")
    assert decode_string(registers, length, layout) == expected


@FAST
@given(text=ASCII, length=st.integers(1, 40))
def test_ba_strings_are_ab_strings_with_swapped_bytes(text: str, length: int) -> None:
    ab = encode_string(text, length, Layout.parse("AB", DataType.STRING))
    ba = encode_string(text, length, Layout.parse("BA", DataType.STRING))
    assert ba == [((w & 0xFF) << 8) | (w >> 8) for w in ab]
    if text and text[0] != "\0":
        assert ab[0] >> 8 == ord(text[0])  # first character in the high byte (Modbus convention)


# --- bits -------------------------------------------------------------------------------------


@FAST
@given(register=st.integers(0, 0xFFFF))
def test_decode_bit_reads_every_bit(register: int) -> None:
    bits = [decode_bit(register, bit) for bit in range(16)]
    assert bits == [bool(register & (1 << bit)) for bit in range(16)]
    assert sum(1 << bit for bit, on in enumerate(bits) if on) == register


@pytest.mark.parametrize("bit", [-1, 16])
def test_decode_bit_refuses_a_bit_outside_the_register(bit: int) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.15"):
        decode_bit(0xFFFF, bit)


# --- scaling ----------------------------------------------------------------------------------

SCALES = st.one_of(
    st.sampled_from([1.0, 0.1, 0.01, 0.001, 10.0, -1.0, -0.5]),
    st.floats(1e-3, 1e3).flatmap(lambda s: st.sampled_from([s, -s])),
)
OFFSETS = st.one_of(st.just(0.0), st.floats(-1e4, 1e4))


@pytest.mark.parametrize("dtype", INTEGERS)
@FAST
@given(data=st.data(), scale=SCALES, offset=OFFSETS)
def test_scaling_round_trip_within_half_a_step(
    dtype: DataType, data: st.DataObject, scale: float, offset: float
) -> None:
    scaling = Scaling(scale=scale, offset=offset)
    low, high = limits(dtype)
    ends = sorted([scaling.to_engineering(low), scaling.to_engineering(high)])
    value = data.draw(st.floats(ends[0], ends[1]))

    raw = scaling.to_raw(value, dtype)

    assert isinstance(raw, int)
    assert low <= raw <= high
    # 64-bit counters are only as exact as a double: allow its rounding on top of half a step
    slack = 8 * math.ulp(max(abs(value), abs(offset), abs(scale * high), abs(scale * low)))
    assert abs(scaling.to_engineering(raw) - value) <= abs(scale) / 2 + slack


@pytest.mark.parametrize("dtype", INTEGERS)
@FAST
@given(scale=SCALES, offset=OFFSETS, beyond=st.floats(1e-9, 1e6))
def test_scaling_saturates_at_the_type_limits(
    dtype: DataType, scale: float, offset: float, beyond: float
) -> None:
    scaling = Scaling(scale=scale, offset=offset)
    low, high = limits(dtype)
    # at least one raw step past the limit, and past a double's rounding for 64-bit types
    past = 1 + beyond * (high - low)
    assert scaling.to_raw(scaling.to_engineering(high + past), dtype) == high
    assert scaling.to_raw(scaling.to_engineering(low - past), dtype) == low


@pytest.mark.parametrize("dtype", INTEGERS)
def test_scaling_saturates_infinities(dtype: DataType) -> None:
    # An infinite engineering value is out of range like any other: the PLC gets the limit.
    low, high = limits(dtype)
    scaling = Scaling(scale=0.1, offset=0.0)
    assert scaling.to_raw(math.inf, dtype) == high
    assert scaling.to_raw(-math.inf, dtype) == low


@pytest.mark.parametrize("dtype", FLOATS)
@FAST
@given(value=st.floats(-1e30, 1e30), scale=SCALES, offset=OFFSETS)
def test_scaling_of_float_types_is_not_rounded(
    dtype: DataType, value: float, scale: float, offset: float
) -> None:
    scaling = Scaling(scale=scale, offset=offset)
    raw = scaling.to_raw(value, dtype)
    assert isinstance(raw, float)
    assert raw == (value - offset) / scale
