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

NaN and infinity decode as they are (float types only); the caller marks such a value with
uncertain quality rather than feeding it to a detector.
"""

from __future__ import annotations

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

    @property
    def registers(self) -> int:
        """How many 16-bit registers one value occupies."""
        return self.value[1]

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
        table = _LAYOUTS[dtype.registers]
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
        return next(iter(_LAYOUTS[dtype.registers]))


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
    if len(registers) != dtype.registers:
        raise ValueError(f"{dtype.name.lower()} needs {dtype.registers} registers")
    words = _to_big_endian_words(registers, layout)
    raw = struct.pack(f">{len(words)}H", *words)
    value: float | int = struct.unpack(f">{dtype.value[0]}", raw)[0]
    return value


def encode(value: float | int, dtype: DataType, layout: Layout = Layout()) -> list[int]:
    """Encode one value into registers (the inverse of `decode`)."""
    fmt = dtype.value[0]
    number = float(value) if dtype.is_float else int(value)
    raw = struct.pack(f">{fmt}", number)
    words = list(struct.unpack(f">{dtype.registers}H", raw))
    if layout.byte_swap:
        words = [_swap_bytes(w) for w in words]
    if layout.word_swap:
        words.reverse()
    return words


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
        bits = 16 * dtype.registers
        signed = dtype.value[0].islower()
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        # A PLC saturates an out-of-range integer instead of wrapping it.
        return min(max(round(raw), low), high)
