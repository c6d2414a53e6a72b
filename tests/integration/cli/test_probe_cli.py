"""`lineside probe` in a subprocess against a real pymodbus server (TCP on loopback, RTU on a pty).

The server holds values whose layout the test knows; the probe must show each of them in the
row of its address, under the type and word order it was written in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from agent.core.codec import DataType, Layout, encode
from tests.helpers import REPO, free_port
from tests.integration.sources.test_rtu_serial import BAUD, PtyPair, pty_pair

__all__ = ["pty_pair"]  # the socat fixture, shared with the RTU source tests

CDAB = Layout(word_swap=True)
HOLDING = [
    *encode(231.5, DataType.FLOAT32, CDAB),  # 0-1: float32, word-swapped
    *encode(-123456, DataType.INT32),  # 2-3: int32, big-endian
    (-1234) & 0xFFFF,  # 4: int16, negative
    50000,  # 5: uint16 past int16
    *encode(-0.5, DataType.FLOAT32),  # 6-7: float32, big-endian
    0,
    0,
]
INPUTS = [100, 200, 300, 400]
COILS = [True, False, True, True, False, False, False, True]


def slave(unit: int = 1) -> SimDevice:
    """A device with exactly these tables: anything past them is an illegal data address."""
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=COILS, datatype=SimDataType.BITS)],
            [SimData(0, values=[False] * 8, datatype=SimDataType.BITS)],
            [SimData(0, values=HOLDING, datatype=SimDataType.REGISTERS)],
            [SimData(0, values=INPUTS, datatype=SimDataType.REGISTERS)],
        ),
    )


@contextlib.contextmanager
def serving(make_server: Any) -> Iterator[None]:
    """A pymodbus server on its own event loop in a thread, while the CLI runs as a process."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        holder["server"] = make_server()
        await holder["server"].serve_forever(background=True)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    assert started.is_set()
    try:
        yield
    finally:
        stop = asyncio.run_coroutine_threadsafe(holder["server"].shutdown(), loop)
        stop.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module")
def tcp_port() -> Iterator[int]:
    port = free_port()
    with serving(lambda: ModbusTcpServer([slave()], address=("127.0.0.1", port))):
        yield port


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "probe", *args],
        cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def probe_json(*args: str) -> dict[str, Any]:
    out = probe(*args, "--json")
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def order_of(pair: dict[str, Any], dtype: str, value: float) -> list[str]:
    """The word orders under which a pair decodes to `value` as `dtype`."""
    return [o for o, v in pair["orders"].items() if v[dtype] == pytest.approx(value)]


def test_each_value_appears_in_its_row_type_and_order(tcp_port: int) -> None:
    out = probe_json("--host", "127.0.0.1", "--port", str(tcp_port))
    assert (out["table"], out["start"], out["count"], out["unit"]) == ("holding", 0, 10, 1)
    assert out["source"] == f"modbus-tcp 127.0.0.1:{tcp_port}"
    regs = out["registers"]
    assert [r["raw"] for r in regs] == HOLDING
    assert [r["reference"] for r in regs[:2]] == ["40001", "40002"]
    assert regs[4]["int16"] == -1234 and regs[4]["uint16"] == 64302 and regs[4]["hex"] == "0xFB2E"
    assert regs[5]["uint16"] == 50000 and regs[5]["int16"] == 50000 - 65536
    pairs = {p["address"]: p for p in out["pairs"]}
    assert len(pairs) == 9  # every adjacent pair of 10 registers
    assert order_of(pairs[0], "float32", 231.5) == ["CDAB"]
    assert pairs[0]["orders"]["ABCD"]["float32"] != pytest.approx(231.5)
    assert order_of(pairs[2], "int32", -123456) == ["ABCD"]
    assert pairs[2]["orders"]["ABCD"]["uint32"] == 2**32 - 123456
    assert order_of(pairs[6], "float32", -0.5) == ["ABCD"]
    assert pairs[6]["orders"]["ABCD"]["hex"] == "BF000000"
    assert pairs[6]["orders"]["DCBA"]["hex"] == "000000BF"
    assert "scaled" not in regs[0]


def test_the_text_table_puts_values_beside_their_address(tcp_port: int) -> None:
    out = probe("--host", "127.0.0.1", "--port", str(tcp_port), "--count", "8")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"modbus-tcp 127.0.0.1:{tcp_port} unit 1: holding registers 0..7 (8)"
    row = next(line.split() for line in lines if line.startswith("4 "))
    assert row == ["4", "40005", "0xFB2E", "-1234", "64302"]
    pair0 = lines.index(next(line for line in lines if line.startswith("0-1")))
    cdab = lines[pair0 + 1].split()
    assert cdab[0] == "CDAB" and cdab[-1] == "231.5"
    assert any(line.split()[:2] == ["2-3", "ABCD"] and "-123456" in line.split() for line in lines)


def test_modicon_start_is_translated_and_said(tcp_port: int) -> None:
    out = probe_json("--host", "127.0.0.1", "--port", str(tcp_port), "--start", "40005",
                     "--count", "2")  # fmt: skip
    assert (out["table"], out["start"]) == ("holding", 4)
    assert out["note"] == "--start 40005: Modicon 40005 = holding register, protocol address 4"
    assert [r["int16"] for r in out["registers"]] == [-1234, 50000 - 65536]
    six = probe_json("--host", "127.0.0.1", "--port", str(tcp_port), "--start", "300002",
                     "--count", "3")  # fmt: skip
    assert (six["table"], six["start"]) == ("input", 1)
    assert [r["raw"] for r in six["registers"]] == INPUTS[1:]
    coils = probe_json("--host", "127.0.0.1", "--port", str(tcp_port), "--start", "00003",
                       "--count", "6")  # fmt: skip
    assert (coils["table"], coils["start"]) == ("coil", 2)
    assert [b["value"] for b in coils["bits"]] == [int(c) for c in COILS[2:8]]
    assert coils["bits"][0]["reference"] == "00003"
    text = probe("--host", "127.0.0.1", "--port", str(tcp_port), "--start", "40001", "--count", "2")
    assert "--start 40001: Modicon 40001 = holding register, protocol address 0" in text.stdout


def test_scale_and_offset_add_scaled_columns(tcp_port: int) -> None:
    out = probe_json("--host", "127.0.0.1", "--port", str(tcp_port), "--start", "4",
                     "--count", "4", "--scale", "0.1", "--offset", "5")  # fmt: skip
    assert out["registers"][0]["scaled"]["int16"] == pytest.approx(-1234 * 0.1 + 5)
    assert out["pairs"][2]["orders"]["ABCD"]["scaled"]["float32"] == pytest.approx(-0.5 * 0.1 + 5)
    text = probe("--host", "127.0.0.1", "--port", str(tcp_port), "--count", "2", "--scale", "2")
    assert "int16 scaled" in text.stdout and "float32 scaled" in text.stdout


def test_a_modbus_exception_is_one_line_naming_plc_unit_and_address(tcp_port: int) -> None:
    out = probe("--host", "127.0.0.1", "--port", str(tcp_port), "--start", "100")
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"lineside probe: PLC modbus-tcp 127.0.0.1:{tcp_port}, unit 1 holding 100+10: "
        "Modbus exception 2 (illegal data address) "
        "(fix: the device has no such range: try a smaller --count or another --start)"
    ]


def test_a_closed_port_names_the_errno(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = probe("--host", "127.0.0.1", "--port", str(port), "--timeout", "1")
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"lineside probe: PLC modbus-tcp 127.0.0.1:{port}, unit 1 holding 0+10:")
    assert "[Errno 111]" in line and "Traceback" not in out.stderr


def test_a_device_that_never_answers_times_out_in_one_line() -> None:
    with socket.socket() as listener:  # accepts the connection, never answers a request
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        out = probe("--host", "127.0.0.1", "--port", str(port), "--timeout", "0.3")
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert line == (
        f"lineside probe: PLC modbus-tcp 127.0.0.1:{port}, unit 1 holding 0+10: "
        "no reply within 0.3 s"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "40001", "--table", "input"], "--start: 40001 is a Modicon holding register"),
        (["--start", "70000"], "--start: 70000 is outside 0..65535"),
        (["--start", "forty"], "--start: 'forty' is not a number"),
        (["--count", "126"], "--count: 126 is outside 1..125 for one read of a holding"),
        (["--table", "coil", "--count", "2001"], "--count: 2001 is outside 1..2000"),
        (["--start", "65530", "--count", "10"], "--count: 65530+10 runs past address 65535"),
        (["--unit", "300"], "--unit: 300 is outside 0..247"),
        (["--address-style", "modicon", "--start", "20001"], "names no Modicon table"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    out = probe("--host", "127.0.0.1", "--port", "1", *args)
    assert out.returncode == 2
    assert message in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1


def test_address_style_protocol_reads_40001_as_written(tcp_port: int) -> None:
    out = probe("--host", "127.0.0.1", "--port", str(tcp_port), "--start", "40001",
                "--address-style", "protocol")  # fmt: skip
    assert out.returncode == 1  # the device has no holding register 40001: asked as written
    assert "unit 1 holding 40001+10: Modbus exception 2" in out.stderr
    one = probe_json("--host", "127.0.0.1", "--port", str(tcp_port), "--start", "5",
                     "--address-style", "one-based", "--count", "1")  # fmt: skip
    assert one["start"] == 4 and one["registers"][0]["int16"] == -1234


def test_rtu_on_a_serial_port(pty_pair: PtyPair) -> None:
    server = lambda: ModbusSerialServer(  # noqa: E731
        [slave(unit=7)], framer=FramerType.RTU, port=pty_pair.a, baudrate=BAUD,
        bytesize=8, parity="N", stopbits=1,
    )  # fmt: skip
    with serving(server):
        out = probe_json("--serial", pty_pair.b, "--baudrate", str(BAUD), "--unit", "7",
                         "--count", "4")  # fmt: skip
    assert out["source"] == f"modbus-rtu {pty_pair.b} {BAUD} 8E1"
    assert [r["raw"] for r in out["registers"]] == HOLDING[:4]
    assert order_of(out["pairs"][0], "float32", 231.5) == ["CDAB"]


def test_a_missing_serial_port_is_one_line_with_the_errno(tmp_path: Path) -> None:
    missing = tmp_path / "ttyUSB9"
    out = probe("--serial", str(missing), "--timeout", "0.5")
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert line.startswith(
        f"lineside probe: PLC modbus-rtu {missing} 19200 8E1, unit 1 holding 0+10:"
    )
    assert "[Errno 2]" in line


def test_host_or_serial_but_not_both() -> None:
    for args in ([], ["--host", "127.0.0.1", "--serial", "/dev/null"]):
        out = probe(*args)
        assert out.returncode == 2
        assert "--host: give --host (Modbus TCP) or --serial (Modbus RTU)" in out.stderr
