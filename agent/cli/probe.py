"""`lineside probe`: read a register range from a live PLC and show it decoded every way.

The way Kepware's Quick Client helps find a device's layout: each register as int16/uint16,
each adjacent pair as int32/uint32/float32 in ABCD/CDAB/BADC/DCBA (and scaled, with
--scale/--offset), so the row that shows the value on the device's display names the `type`
and `order` to write in the tag map. It goes through the agent's own transports (TCP, RTU on a
serial port, RTU over TCP) and decoder, so what it shows is what the agent will read.

`--start` takes a protocol address, or a Modicon reference (40001, 300010, ...: translated,
and said so); `--address-style` forces one reading, as the tag map's `address_style` does.
Exit 0 with the table, 1 when the PLC could not be read (one line naming the PLC, unit,
address and the Modbus exception or errno), 2 for a bad option.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from typing import Any

from agent.cli.probe_table import ProbeRead, as_json, as_text
from agent.config import (
    BIT_TABLES,
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    PlcConfig,
    SerialSettings,
    default_inter_frame_s,
)
from agent.config.addresses import HIGHEST_ADDRESS, TABLE_WORDS, parse_modicon
from agent.config.site import BAUD_RATES
from agent.core.codec import Scaling
from agent.errors import ConfigError
from agent.sources.modbus import make_transport
from agent.sources.transport import (
    EXCEPTION_NAMES,
    ExceptionReply,
    LinkError,
    ModbusTransport,
    describe_request,
)

TABLES = ("holding", "input", "coil", "discrete")
STYLES = ("auto", "protocol", "modicon", "one-based")
_HINTS = {
    1: "the device does not serve this table: try another --table",
    2: "the device has no such range: try a smaller --count or another --start",
}


def _number(text: str, option: str) -> int:
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise ConfigError(
            option, f"{text!r} is not a number", "e.g. 0, 100, 0x64 or 40001"
        ) from None


def resolve_start(text: str, table: str | None, style: str) -> tuple[str, int, str]:
    """The table and 0-based protocol address `--start` names, and a note on how it was read.

    `auto` takes a 5- or 6-digit number with a leading 0, 1, 3 or 4 that is a valid Modicon
    reference as one (so 40001 is holding 0, 00001 coil 0) and any other number as a protocol
    address; a reference whose table disagrees with --table is refused, never guessed."""
    text = text.strip()
    as_reference = style == "modicon" or (
        style == "auto" and text.isdigit() and len(text) in (5, 6) and text[0] in "0134"
    )
    if as_reference:
        try:
            ref = parse_modicon(text if len(text) >= 5 else _number(text, "--start"))
        except ValueError as exc:
            if style == "modicon":
                raise ConfigError("--start", str(exc), "write e.g. 40001 or 400001") from None
        else:
            if table is not None and table != ref.table:
                raise ConfigError(
                    "--start",
                    f"{text} is a Modicon {TABLE_WORDS[ref.table]} reference, but --table "
                    f"is {table}",
                    f"drop --table, or pass --address-style protocol to read {table} "
                    f"address {text} as written",
                )
            return ref.table, ref.address, f"--start {text}: {ref.describe()}"
    number = _number(text, "--start")
    table = table or "holding"
    if style == "one-based":
        if not 1 <= number <= HIGHEST_ADDRESS + 1:
            raise ConfigError("--start", f"{number} is outside 1..{HIGHEST_ADDRESS + 1}")
        return table, number - 1, f"--start {text}: 1-based, protocol address {number - 1}"
    if not 0 <= number <= HIGHEST_ADDRESS:
        raise ConfigError(
            "--start", f"{number} is outside 0..{HIGHEST_ADDRESS}", "give a protocol address"
        )
    return table, number, ""


def _check_count(table: str, start: int, count: int) -> None:
    limit = MAX_BITS_PER_READ if table in BIT_TABLES else MAX_REGISTERS_PER_READ
    if not 1 <= count <= limit:
        raise ConfigError("--count", f"{count} is outside 1..{limit} for one read of a {table}")
    if start + count - 1 > HIGHEST_ADDRESS:
        raise ConfigError(
            "--count", f"{start}+{count} runs past address {HIGHEST_ADDRESS}", "read fewer"
        )


def connection(args: argparse.Namespace) -> PlcConfig:
    """The connection the options describe, as the agent's own PlcConfig."""
    if not args.timeout > 0:
        raise ConfigError("--timeout", f"{args.timeout} is not a number of seconds above 0")
    serial = None
    protocol = "modbus-rtu-over-tcp" if args.rtu_over_tcp else "modbus-tcp"
    if args.serial:
        protocol = "modbus-rtu"
        stopbits = args.stopbits or (2 if args.parity == "N" else 1)
        gap = default_inter_frame_s(args.baudrate, args.parity, args.bytesize, stopbits)
        serial = SerialSettings(
            port=args.serial, baudrate=args.baudrate, parity=args.parity, bytesize=args.bytesize,
            stopbits=stopbits, inter_frame_s=gap,
        )  # fmt: skip
        if args.unit == 0:
            raise ConfigError(
                "--unit", "0 is the broadcast address on a serial bus: nobody answers"
            )
    return PlcConfig(
        name="probe", protocol=protocol, host=args.host or "", port=args.port, serial=serial,
        timeout_s=args.timeout, max_backoff_s=args.timeout, poll_interval_s=2 * args.timeout,
        devices=(),
    )  # fmt: skip


def _errno_of(host: str, port: int, timeout_s: float) -> str:
    """Why a TCP connect failed, in the kernel's words (pymodbus keeps the errno to itself)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return ""
    except TimeoutError:
        return f"no answer within {timeout_s} s"
    except OSError as exc:
        return f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)


async def read_block(
    transport: ModbusTransport, unit: int, table: str, start: int, count: int
) -> list[int] | list[bool]:
    """Connect, read one block, close; LinkError or ExceptionReply as the transport raises."""
    await transport.connect()
    try:
        if table in BIT_TABLES:
            return await transport.read_bits(unit, table, start, count)
        return await transport.read_registers(unit, table, start, count)
    finally:
        transport.close()


def _failure(plc: PlcConfig, exc: Exception, where: str) -> str:
    """One line: the PLC, unit, address, and the Modbus exception or errno, with a fix."""
    if isinstance(exc, ExceptionReply):
        name = EXCEPTION_NAMES.get(exc.code, "unknown exception")
        hint = _HINTS.get(exc.code, "")
        why = f"Modbus exception {exc.code} ({name})" + (f" (fix: {hint})" if hint else "")
    else:
        why = str(exc).removeprefix(where + ": ")
        if plc.protocol != "modbus-rtu" and "refused or unreachable" in why:
            why += f": {_errno_of(plc.host, plc.port, plc.timeout_s) or 'answered on retry'}"
    return f"lineside probe: PLC {make_transport(plc).description}, {where}: {why}"


def cmd_probe(args: argparse.Namespace) -> int:
    """Read the range and print it decoded; exit 1 if the PLC cannot be read, 2 on bad options."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # its failures reach us as errors
    try:
        if bool(args.host) == bool(args.serial):
            raise ConfigError("--host", "give --host (Modbus TCP) or --serial (Modbus RTU)")
        if not 0 <= args.unit <= 247:
            raise ConfigError("--unit", f"{args.unit} is outside 0..247")
        table, start, note = resolve_start(args.start, args.table, args.address_style)
        _check_count(table, start, args.count)
        plc = connection(args)
    except ConfigError as exc:
        print(f"lineside probe: {exc}", file=sys.stderr)
        return 2
    transport = make_transport(plc)
    where = describe_request(args.unit, table, start, args.count)
    try:
        values = asyncio.run(read_block(transport, args.unit, table, start, args.count))
    except (LinkError, ExceptionReply) as exc:
        print(_failure(plc, exc, where), file=sys.stderr)
        return 1
    scaling = None
    if args.scale is not None or args.offset is not None:
        scaling = Scaling(scale=args.scale or 1.0, offset=args.offset or 0.0)
    read = ProbeRead(transport.description, args.unit, table, start, values, scaling, note)
    if args.json:
        print(json.dumps(as_json(read), indent=1))
    else:
        sys.stdout.write(as_text(read))
    return 0


def add_parser(sub: Any) -> None:
    """Register `lineside probe` on the CLI's subparsers."""
    p = sub.add_parser(
        "probe", help="read registers from a live PLC, decoded in every type and word order"
    )
    p.add_argument("--host", help="Modbus TCP host (or the serial device server's)")
    p.add_argument("--port", type=int, default=502)
    p.add_argument("--rtu-over-tcp", action="store_true", help="the TCP endpoint speaks RTU")
    p.add_argument("--serial", help="serial port for Modbus RTU, e.g. /dev/ttyUSB0")
    p.add_argument("--baudrate", type=int, default=19200, choices=BAUD_RATES)
    p.add_argument("--parity", default="E", choices=("N", "E", "O"))
    p.add_argument("--bytesize", type=int, default=8, choices=(7, 8))
    p.add_argument("--stopbits", type=int, choices=(1, 2), help="default 1, or 2 with parity N")
    p.add_argument("--unit", type=int, default=1, help="unit id (slave address), default 1")
    p.add_argument("--table", choices=TABLES, help="default holding, or the one --start names")
    p.add_argument(
        "--start", default="0", help="protocol address, or a Modicon reference (40001, 300010)"
    )
    p.add_argument(
        "--count", type=int, default=10, help="registers (at most 125) or bits (2000); default 10"
    )
    p.add_argument(
        "--address-style", choices=STYLES, default="auto",
        help="how to read --start (auto: 5/6-digit 0/1/3/4xxxx references are Modicon)",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per request, default 2")
    p.add_argument("--scale", type=float, help="add a scaled column: raw * scale + offset")
    p.add_argument("--offset", type=float, help="offset of the scaled column")
    p.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    p.set_defaults(func=cmd_probe)
