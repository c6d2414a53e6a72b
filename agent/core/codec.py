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
