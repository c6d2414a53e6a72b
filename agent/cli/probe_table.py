"""What `lineside probe` prints: each register, and each adjacent pair in every type and order.

The decoding is the agent's own (agent.core.codec), so a layout read off this table is the one
the tag map's `type` and `order` will decode the same way. Pure: no I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.config.addresses import TABLE_WORDS, modicon_text
from agent.core.codec import DataType, Layout, Scaling, decode

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
PAIR_TYPES = (DataType.INT32, DataType.UINT32, DataType.FLOAT32)
WORD_TYPES = (DataType.INT16, DataType.UINT16)


@dataclass(frozen=True)
class ProbeRead:
    """One block read from a device, with what the user asked to see."""

    source: str  # the connection in words: `modbus-tcp 127.0.0.1:502`
    unit: int
    table: str
    start: int
    values: Sequence[int] | Sequence[bool]
    scaling: Scaling | None = None  # only when --scale/--offset were given
    note: str = ""  # how --start was read, when it was not a plain protocol address

    @property
    def is_bits(self) -> bool:
        """Coils and discrete inputs are bits, the other tables registers."""
        return self.table in ("coil", "discrete")

    def heading(self) -> str:
        """`modbus-tcp 127.0.0.1:502 unit 1: holding registers 0..9 (10)`."""
        last = self.start + len(self.values) - 1
        what = TABLE_WORDS[self.table] + "s"
        return f"{self.source} unit {self.unit}: {what} {self.start}..{last} ({len(self.values)})"


def _number(value: float | int) -> float | int | str:
    """A JSON-safe number: NaN and infinities become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def register_rows(read: ProbeRead) -> list[dict[str, Any]]:
    """Each register: its address, Modicon reference, raw value as hex, int16 and uint16."""
    rows = []
    for i, raw in enumerate(read.values):
        address = read.start + i
        row: dict[str, Any] = {
            "address": address,
            "reference": modicon_text(read.table, address),
            "raw": int(raw),
            "hex": f"0x{int(raw):04X}",
        }
        for dtype in WORD_TYPES:
            row[dtype.name.lower()] = decode([int(raw)], dtype, Layout())
        if read.scaling is not None:
            row["scaled"] = {
                t.name.lower(): read.scaling.to_engineering(row[t.name.lower()]) for t in WORD_TYPES
            }
        rows.append(row)
    return rows


def pair_rows(read: ProbeRead) -> list[dict[str, Any]]:
    """Each adjacent pair of registers decoded as int32, uint32 and float32 in every order."""
    rows = []
    words = [int(v) for v in read.values]
    for i in range(len(words) - 1):
        pair = words[i : i + 2]
        orders: dict[str, dict[str, Any]] = {}
        for order in ORDERS:
            as_word = int(decode(pair, DataType.UINT32, Layout.parse(order, DataType.UINT32)))
            values: dict[str, Any] = {"hex": f"{as_word:08X}"}
            for dtype in PAIR_TYPES:
                values[dtype.name.lower()] = decode(pair, dtype, Layout.parse(order, dtype))
            if read.scaling is not None:
                values["scaled"] = {
                    t.name.lower(): read.scaling.to_engineering(values[t.name.lower()])
                    for t in PAIR_TYPES
                }
            orders[order] = values
        rows.append({"address": read.start + i, "registers": pair, "orders": orders})
    return rows


def bit_rows(read: ProbeRead) -> list[dict[str, Any]]:
    """Each coil or discrete input: address, Modicon reference, 0 or 1."""
    return [
        {"address": read.start + i, "reference": modicon_text(read.table, read.start + i),
         "value": int(bool(v))}
        for i, v in enumerate(read.values)
    ]  # fmt: skip


def as_json(read: ProbeRead) -> dict[str, Any]:
    """The whole read as one JSON-safe object (`lineside probe --json`)."""
    out: dict[str, Any] = {
        "source": read.source,
        "unit": read.unit,
        "table": read.table,
        "start": read.start,
        "count": len(read.values),
        "note": read.note,
    }
    if read.scaling is not None:
        out["scale"], out["offset"] = read.scaling.scale, read.scaling.offset
    if read.is_bits:
        out["bits"] = bit_rows(read)
        return out
    out["registers"] = register_rows(read)
    out["pairs"] = pair_rows(read)
    safe: dict[str, Any] = _json_safe(out)
    return safe


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return _number(value) if isinstance(value, float) else value


def _cell(value: Any) -> str:
    # 7 significant digits are all a float32 holds; a scaled value keeps those of an int32.
    if isinstance(value, float):
        return f"{value:.7g}"
    return str(value)


def _scaled(value: float) -> str:
    return f"{value:.10g}"


def _columns(header: list[str], rows: list[list[Any]], left: int) -> list[str]:
    """Aligned text columns; the first `left` are left-aligned, the numbers right-aligned."""
    cells = [header, *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def as_text(read: ProbeRead) -> str:
    """The read as tables for a person: registers, then pairs in every order (or the bits)."""
    lines = [read.heading()]
    if read.note:
        lines.append(read.note)
    lines.append("")
    if read.is_bits:
        rows = [[r["address"], r["reference"], r["value"]] for r in bit_rows(read)]
        lines += _columns(["address", "ref", "value"], rows, left=2)
        return "\n".join(lines) + "\n"
    scaled = read.scaling is not None
    header = ["address", "ref", "hex", "int16", "uint16"]
    if scaled:
        header += ["int16 scaled", "uint16 scaled"]
    rows = []
    for r in register_rows(read):
        row = [r["address"], r["reference"], r["hex"], r["int16"], r["uint16"]]
        extra = [_scaled(r["scaled"][t]) for t in ("int16", "uint16")] if scaled else []
        rows.append(row + extra)
    lines += _columns(header, rows, left=3)
    pairs = pair_rows(read)
    if pairs:
        lines.append("")
        header = ["pair", "order", "hex", "int32", "uint32", "float32"]
        if scaled:
            header += ["int32 scaled", "uint32 scaled", "float32 scaled"]
        rows = []
        for p in pairs:
            for n, (order, v) in enumerate(p["orders"].items()):
                first = f"{p['address']}-{p['address'] + 1}" if n == 0 else ""
                row = [first, order, f"{v['hex'][:4]} {v['hex'][4:]}",
                       v["int32"], v["uint32"], v["float32"]]  # fmt: skip
                if scaled:
                    row += [_scaled(v["scaled"][t]) for t in ("int32", "uint32")]
                    row.append(v["scaled"]["float32"])
                rows.append(row)
        lines += _columns(header, rows, left=3)
    return "\n".join(lines) + "\n"
