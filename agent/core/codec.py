"""Registers <-> values: data types, byte and word order, scale and offset. Pure.

Layouts use the notation controls engineers know from PLC manuals: for a 32-bit value whose
big-endian bytes are A B C D (A most significant),

    ABCD  big-endian words, big-endian bytes (Modbus default, Siemens)
    CDAB  word-swapped (many Schneider, Wago, energy meters)
    BADC  byte-swapped inside each word
    DCBA  fully little-endian

The same idea extends to 64-bit values (ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA) and to 16-bit
values (AB, BA). A layout is two independent switches: swap the bytes inside every register,
and reverse the order of the registers.

Booleans come from coils and discrete inputs (one bit each) or from one bit of a register
(bit 0 is the least significant). Fixed-length strings are `length` bytes, two per register,
first character in the high byte (the Modbus convention; `BA` swaps the bytes of every
register), ASCII, cut at the first NUL and stripped of trailing spaces.

NaN and infinity decode as they are (float types only); the hub marks such a value with
uncertain quality rather than feeding it to a detector. 64-bit integers become floats in
engineering units, which is exact up to 2**53; beyond that (long-running counters) the value
is rounded to the nearest representable double.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np


class DataType(Enum):
    """Register data types, with their struct format and register count."""

    INT16 = ("h", 1)
    UINT16 = ("H", 1)
    INT32 = ("i", 2)
    UINT32 = ("I", 2)
    INT64 = ("q", 4)
    UINT64 = ("Q", 4)
    FLOAT32 = ("f", 2)
    FLOAT64 = ("d", 4)
    BOOL = ("?", 1)  # a coil, a discrete input, or one bit of a register
    STRING = ("s", 0)  # fixed length: registers = ceil(length / 2)

    @property
    def registers(self) -> int:
        """How many 16-bit registers one value occupies."""
        return self.value[1]

    @property
    def is_numeric(self) -> bool:
        """True for the integer and float types that `decode` handles."""
        return self not in (DataType.BOOL, DataType.STRING)

    @property
    def is_float(self) -> bool:
        """True for IEEE-754 types."""
        return self in (DataType.FLOAT32, DataType.FLOAT64)

    @classmethod
    def parse(cls, name: str) -> DataType:
        """Look up a type by its config name (`float32`, `int16`, ...)."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(
                f"unknown data type {name!r}; use one of " + ", ".join(t.name.lower() for t in cls)
            ) from None


_LAYOUTS = {
    1: {"AB": (False, False), "BA": (True, False)},
    2: {
        "ABCD": (False, False),
        "CDAB": (False, True),
        "BADC": (True, False),
        "DCBA": (True, True),
    },
    4: {
        "ABCDEFGH": (False, False),
        "GHEFCDAB": (False, True),
        "BADCFEHG": (True, False),
        "HGFEDCBA": (True, True),
    },
}


@dataclass(frozen=True)
class Layout:
    """Byte swap inside each register, and reversal of the register order."""

    byte_swap: bool = False
    word_swap: bool = False

    @classmethod
    def parse(cls, name: str, dtype: DataType) -> Layout:
        """Read a layout name such as `CDAB` for a value of type `dtype`."""
        table = _LAYOUTS[max(1, dtype.registers)]
        try:
            byte_swap, word_swap = table[name.upper()]
        except KeyError:
            raise ValueError(
                f"layout {name!r} does not fit {dtype.name.lower()}; use one of " + ", ".join(table)
            ) from None
        return cls(byte_swap=byte_swap, word_swap=word_swap)

    @staticmethod
    def default_name(dtype: DataType) -> str:
        """The big-endian layout name for a type (`AB`, `ABCD` or `ABCDEFGH`)."""
        return next(iter(_LAYOUTS[max(1, dtype.registers)]))


def _swap_bytes(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _to_big_endian_words(registers: Sequence[int], layout: Layout) -> list[int]:
    words = list(registers)
    if layout.word_swap:
        words.reverse()
    if layout.byte_swap:
        words = [_swap_bytes(w) for w in words]
    return words


def decode(registers: Sequence[int], dtype: DataType, layout: Layout = Layout()) -> float | int:
    """Decode one value from its registers.

    Examples
    --------
    >>> decode([0x4049, 0x0FDB], DataType.FLOAT32)  # doctest: +ELLIPSIS
    3.14159274...
    >>> decode([0x0FDB, 0x4049], DataType.FLOAT32, Layout(word_swap=True))  # doctest: +ELLIPSIS
    3.14159274...
    >>> decode([0xFFFF], DataType.INT16)
    -1
    """
    if not dtype.is_numeric:
        raise ValueError(f"decode handles numbers; use decode_bit/decode_string for {dtype.name}")
    if len(registers) != dtype.registers:
        raise ValueError(f"{dtype.name.lower()} needs {dtype.registers} registers")
    words = _to_big_endian_words(registers, layout)
    raw = struct.pack(f">{len(words)}H", *words)
    value: float | int = struct.unpack(f">{dtype.value[0]}", raw)[0]
    return value


def encode(value: float | int, dtype: DataType, layout: Layout = Layout()) -> list[int]:
    """Encode one value into registers (the inverse of `decode`)."""
    if not dtype.is_numeric:
        raise ValueError(f"encode handles numbers; {dtype.name} is not one")
    fmt = dtype.value[0]
    number = float(value) if dtype.is_float else int(value)
    raw = struct.pack(f">{fmt}", number)
    words = list(struct.unpack(f">{dtype.registers}H", raw))
    if layout.byte_swap:
        words = [_swap_bytes(w) for w in words]
    if layout.word_swap:
        words.reverse()
    return words


def decode_bit(register: int, bit: int) -> bool:
    """One bit of a register; bit 0 is the least significant.

    >>> decode_bit(0b0100, 2), decode_bit(0b0100, 1)
    (True, False)
    """
    if not 0 <= bit <= 15:
        raise ValueError(f"bit {bit} is outside 0..15")
    return bool((register >> bit) & 1)


def string_registers(length: int) -> int:
    """Registers a string of `length` bytes occupies."""
    return (length + 1) // 2


def decode_string(registers: Sequence[int], length: int, layout: Layout = Layout()) -> str:
    """A fixed-length ASCII string; non-ASCII bytes become U+FFFD.

    >>> decode_string([0x4142, 0x4300], 4)
    'ABC'
    """
    words = [_swap_bytes(w) for w in registers] if layout.byte_swap else list(registers)
    raw = struct.pack(f">{len(words)}H", *words)[:length]
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace").rstrip(" ")


def encode_string(text: str, length: int, layout: Layout = Layout()) -> list[int]:
    """Registers for a string, NUL-padded (or cut) to `length` bytes."""
    raw = text.encode("ascii")[:length].ljust(2 * string_registers(length), b"\0")
    words = list(struct.unpack(f">{len(raw) // 2}H", raw))
    return [_swap_bytes(w) for w in words] if layout.byte_swap else words


@dataclass(frozen=True)
class Scaling:
    """Engineering value = raw * scale + offset."""

    scale: float = 1.0
    offset: float = 0.0

    def to_engineering(self, raw: float | int) -> float:
        """Raw register value to engineering units."""
        return float(raw) * self.scale + self.offset

    def to_raw(self, value: float, dtype: DataType) -> float | int:
        """Engineering units to the raw value to encode (rounded for integer types)."""
        raw = (value - self.offset) / self.scale
        if dtype.is_float:
            return raw
        if math.isnan(raw):
            raise ValueError(f"NaN has no {dtype.name.lower()} representation")
        bits = 16 * dtype.registers
        signed = dtype.value[0].islower()
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        # A PLC saturates an out-of-range integer instead of wrapping it (infinities too).
        if math.isinf(raw):
            return high if raw > 0 else low
        return min(max(round(raw), low), high)


_NUMPY_CODES = {"h": "i2", "H": "u2", "i": "i4", "I": "u4", "q": "i8", "Q": "u8",
                "f": "f4", "d": "f8"}  # fmt: skip


@dataclass(frozen=True)
class BlockField:
    """One numeric value inside a register block: where, what type, which layout, scaling."""

    offset: int  # registers from the start of the block
    dtype: DataType
    layout: Layout = Layout()
    scaling: Scaling = Scaling()


def _value_bytes(field: BlockField) -> list[int]:
    """Indices, in the block's wire bytes, of the field's value bytes in big-endian order."""
    words = range(field.offset, field.offset + field.dtype.registers)
    ordered = reversed(words) if field.layout.word_swap else words
    pairs = [(2 * w + 1, 2 * w) if field.layout.byte_swap else (2 * w, 2 * w + 1) for w in ordered]
    return [i for pair in pairs for i in pair]


class BlockDecoder:
    """Every numeric value of one register block in engineering units, in a few numpy steps.

    Built once per block: one byte gather puts every value's bytes in big-endian order, grouped
    by data type, so a block decodes as one gather, one view per type present, and
    `raw * scale + offset` over arrays. Bit-for-bit the same numbers as `decode` and
    `Scaling.to_engineering` value by value (tests/unit/sources/test_block_readings.py).
    Fields listed grouped by type decode a little faster (a slice per type).

    >>> fields = [BlockField(0, DataType.FLOAT32), BlockField(2, DataType.INT16, Layout(),
    ...           Scaling(0.1))]
    >>> BlockDecoder(fields).decode([0x4049, 0x0FDB, 0xFFF6]).round(5).tolist()
    [3.14159, -1.0]
    """

    def __init__(self, fields: Sequence[BlockField]) -> None:
        for field in fields:
            if not field.dtype.is_numeric:
                raise ValueError(f"a block decodes numbers; {field.dtype.name} is not one")
        self.size = len(fields)
        self.registers = max((f.offset + f.dtype.registers for f in fields), default=0)
        gather: list[int] = []
        self._groups: list[tuple[np.dtype[Any], int, int, slice | np.ndarray]] = []
        for dtype in DataType:
            members = [i for i, f in enumerate(fields) if f.dtype is dtype]
            if not members:
                continue
            start = len(gather)
            for i in members:
                gather.extend(_value_bytes(fields[i]))
            numpy_type = np.dtype(">" + _NUMPY_CODES[dtype.value[0]])
            # fields grouped by type in the caller's order take a slice, not a fancy index
            contiguous = members == list(range(members[0], members[-1] + 1))
            into = slice(members[0], members[-1] + 1) if contiguous else np.array(members)
            self._groups.append((numpy_type, start, len(gather), into))
        self._gather = np.array(gather, dtype=np.intp)
        self._scale = np.array([f.scaling.scale for f in fields], dtype=np.float64)
        self._offset = np.array([f.scaling.offset for f in fields], dtype=np.float64)

    def decode(self, registers: Sequence[int]) -> np.ndarray:
        """The fields' engineering values (float64, NaN and infinity as sent) from the block's
        registers (at least `registers` of them, 0..65535 each)."""
        if len(registers) < self.registers:
            raise ValueError(f"the block needs {self.registers} registers, got {len(registers)}")
        wire = np.asarray(registers, dtype=np.uint16).astype(">u2").view(np.uint8)
        ordered = wire[self._gather]
        raw = np.empty(self.size, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # a signalling NaN is still a NaN
            for numpy_type, start, end, into in self._groups:
                raw[into] = ordered[start:end].view(numpy_type)
            result: np.ndarray = raw * self._scale + self._offset
        return result
