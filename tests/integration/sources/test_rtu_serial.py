"""Modbus RTU through a real serial link: a socat pty pair, pymodbus as the slaves, the hub.

socat joins two pseudo-terminals back to back (`a` for the slaves, `b` for the hub), so the
hub's transport goes through pyserial, termios and the kernel's tty layer exactly as it would
to a USB RS-485 adapter; only the baud rate is not enforced (a pty moves bytes at memory speed).

Parity on a pty: Linux ptys force 8 data bits and no parity. The first configuration of a
fresh pty with parity E succeeds (the kernel drops PARENB and applies the rest); a later
tcsetattr whose only change is PARENB fails with EINVAL (seen on Linux 6.x; pyserial #196).
So the hub's side is configured 8E1, which works because the transport configures its port
once at open and never again, while pymodbus's serial server (which re-sets its timeout after
opening) must run 8N1 here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest
import serial
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from agent.config import DeviceConfig, PlcConfig, SerialSettings, load_tag_map
from agent.core.codec import DataType, Layout, encode
from agent.sources.modbus import ModbusHub
from agent.sources.rtu import RtuOverTcpTransport, SerialRtuTransport
from agent.sources.rtu_framing import crc16
from agent.sources.transport import ModbusTransport
from agent.types import Quality, Sample
from tests.helpers import free_port, wait_for

BAUD = 19200
TIMEOUT_S = 0.2
HAPPY_TIMEOUT_S = 2.0  # tests that are not about timeouts: no flake when CI is loaded

# --- two slaves whose holding blocks have the same shape (6 registers from 0) -------------
# A frame meant for one device would pass every length check on the other: only the unit id
# and one-request-at-a-time keep their values apart.

OVEN_TAGS = [  # unit 1: float32, word-swapped (CDAB)
    {"name": "zone1_temp", "address": 0, "type": "float32", "order": "CDAB"},
    {"name": "zone2_temp", "address": 2, "type": "float32", "order": "CDAB"},
    {"name": "airflow", "address": 4, "type": "float32", "order": "CDAB"},
]
OVEN_VALUES = {"zone1_temp": 231.5, "zone2_temp": -12.25, "airflow": 1013.0625}  # exact in f32
OVEN_REGISTERS = [
    w
    for name in OVEN_VALUES
    for w in encode(OVEN_VALUES[name], DataType.FLOAT32, Layout(False, True))
]

PRESS_TAGS = [  # unit 2: int16, scaled int16, bits of a status word, a spare, coils
    {"name": "stroke_count", "address": 0, "type": "int16"},
    {"name": "ram_speed", "address": 1, "type": "int16", "scale": 0.1},
    {"name": "running", "address": 2, "type": "bool", "bit": 0},
    {"name": "fault", "address": 2, "type": "bool", "bit": 3},
    {"name": "spare", "address": 5, "type": "int16"},
    {"name": "door_closed", "table": "coil", "address": 0},
    {"name": "estop", "table": "coil", "address": 1},
    {"name": "lamp", "table": "coil", "address": 5},
]
PRESS_REGISTERS = [(-1234) & 0xFFFF, 560, 0b0010_0001, 0, 0, 777]
PRESS_COILS = [True, False, False, False, False, True, False, False]
PRESS_VALUES = {
    "stroke_count": -1234.0,
    "ram_speed": 56.0,
    "running": 1.0,
    "fault": 0.0,
    "spare": 777.0,
    "door_closed": 1.0,
    "estop": 0.0,
    "lamp": 1.0,
}


def oven_device() -> SimDevice:
    return SimDevice(
        id=1, simdata=[SimData(0, values=OVEN_REGISTERS, datatype=SimDataType.REGISTERS)]
    )


def press_device() -> SimDevice:
    # separate tables: (coils, discrete inputs, holding, input), coils addressed by bit
    return SimDevice(
        id=2,
        simdata=(
            [SimData(0, values=PRESS_COILS, datatype=SimDataType.BITS)],
            [SimData(0, values=[False] * 8, datatype=SimDataType.BITS)],
            [SimData(0, values=PRESS_REGISTERS, datatype=SimDataType.REGISTERS)],
            [SimData(0, values=[0], datatype=SimDataType.REGISTERS)],
        ),
    )


# --- fixtures and helpers -------------------------------------------------------------------


@dataclass
class PtyPair:
    """Two linked pseudo-terminals: `a` for the slaves, `b` for the hub."""

    a: str
    b: str
    socat: subprocess.Popen[bytes]

    def unplug(self) -> None:
        """Kill socat, as if the USB adapter were pulled: the ptys hang up and vanish."""
        self.socat.kill()
        self.socat.wait()


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    """socat linking two ptys; killed afterwards."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is not on PATH: install socat (make test does)")
    a, b = tmp_path / "a", tmp_path / "b"
    log_path = tmp_path / "socat.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 5
        while "starting data transfer loop" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"socat did not link two ptys:\n{log_path.read_text()}")
            time.sleep(0.01)
        assert a.exists() and b.exists()
        yield PtyPair(str(a), str(b), proc)
    finally:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def serial_slaves(
    path: str, devices: list[SimDevice], silent_except: set[int] | None = None
) -> AsyncIterator[ModbusSerialServer]:
    """pymodbus RTU slaves on one bus. `silent_except`: answer only these units, like a real
    bus (pymodbus 3.16's SimDevice store ignores ignore_missing_devices and answers unknown
    units with exception 4, so the answers of other units are dropped on the way out)."""

    def drop_others(sending: bool, packet: bytes) -> bytes:
        if sending and silent_except is not None and packet and packet[0] not in silent_except:
            return b""
        return packet

    server = ModbusSerialServer(
        devices,
        framer=FramerType.RTU,
        port=path,
        baudrate=BAUD,
        bytesize=8,
        parity="N",  # see the module docstring: pymodbus cannot keep parity E on a pty
        stopbits=1,
        trace_packet=drop_others,
    )
    await server.serve_forever(background=True)
    try:
        yield server
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def write_map(path: Path, tags: list[dict[str, object]]) -> Path:
    lines = []
    for tag in tags:
        lines.append("[[tag]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in tag.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def device(name: str, unit: int, map_path: Path, poll_s: float = 0.02) -> DeviceConfig:
    return DeviceConfig(
        name=name,
        unit=unit,
        poll_interval_s=poll_s,
        tag_map=load_tag_map(map_path),
        max_gap=8,
        max_registers=125,
        max_bits=2000,
    )


def rtu_plc(port: str, *devices: DeviceConfig, timeout_s: float = TIMEOUT_S) -> PlcConfig:
    return PlcConfig(
        name="line",
        protocol="modbus-rtu",
        host="",
        port=0,
        serial=SerialSettings(
            port=port, baudrate=BAUD, parity="E", bytesize=8, stopbits=1, inter_frame_s=0.002
        ),
        timeout_s=timeout_s,
        max_backoff_s=0.2,
        poll_interval_s=0.02,
        devices=devices,
    )


def assert_values(sample: Sample, expected: dict[str, float]) -> None:
    assert set(sample.readings) == set(expected)
    for name, value in expected.items():
        reading = sample.readings[name]
        assert reading.quality is Quality.GOOD, f"{sample.source} {name}: {reading.reason}"
        assert reading.value == pytest.approx(value, abs=1e-9), f"{sample.source} {name}"


async def run_hub(
    hub: ModbusHub, until: Callable[[list[Sample]], bool], timeout: float
) -> list[Sample]:
    """Run every device task of the hub until `until(samples)`; return the samples."""
    samples: list[Sample] = []
    task = asyncio.create_task(hub.run(samples.append))
    try:
        await wait_for(lambda: until(samples), timeout=timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return samples


def of(samples: list[Sample], source: str) -> list[Sample]:
    return [s for s in samples if s.source == source]


# --- against pymodbus slaves ----------------------------------------------------------------


async def test_two_slaves_polled_concurrently_never_mix(pty_pair: PtyPair, tmp_path: Path) -> None:
    slaves_end, hub_end = pty_pair.a, pty_pair.b
    oven = device("oven", 1, write_map(tmp_path / "oven.toml", OVEN_TAGS))
    press = device("press", 2, write_map(tmp_path / "press.toml", PRESS_TAGS))
    async with serial_slaves(slaves_end, [oven_device(), press_device()]):
        hub = ModbusHub(rtu_plc(hub_end, oven, press, timeout_s=HAPPY_TIMEOUT_S))
        assert hub.transport.description == f"modbus-rtu {hub_end} 19200 8E1"
        shapes = sorted((b.table, b.start, b.count) for b in hub.blocks)
        assert shapes == [("coil", 0, 6), ("holding", 0, 6), ("holding", 0, 6)]
        samples = await run_hub(
            hub,
            lambda s: min(len(of(s, "line/oven")), len(of(s, "line/press"))) >= 50,
            timeout=20,
        )
    ovens, presses = of(samples, "line/oven"), of(samples, "line/press")
    for sample in ovens:
        assert_values(sample, OVEN_VALUES)
    for sample in presses:
        assert_values(sample, PRESS_VALUES)
    # both device tasks really were on the bus at the same time, taking turns
    switches = sum(a.source != b.source for a, b in itertools.pairwise(samples))
    assert switches >= 20
    assert hub.link.failures == 0 and hub.reconnects == 1
    assert all(d.stats.failures == 0 for d in hub.devices)


async def test_a_unit_nobody_answers_times_out_alone(
    pty_pair: PtyPair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # pymodbus logs a traceback for every request to the unknown unit (its answer is dropped)
    caplog.set_level(logging.CRITICAL, logger="pymodbus.logging")
    slaves_end, hub_end = pty_pair.a, pty_pair.b
    oven = device("oven", 1, write_map(tmp_path / "oven.toml", OVEN_TAGS))
    ghost = device("ghost", 7, write_map(tmp_path / "ghost.toml", OVEN_TAGS[:1]))
    async with serial_slaves(slaves_end, [oven_device()], silent_except={1}):
        # 1 s, not 0.2 s: unit 1 must answer in time on every poll even on a loaded machine.
        hub = ModbusHub(rtu_plc(hub_end, oven, ghost, timeout_s=1.0))
        samples = await run_hub(
            hub,
            lambda s: len(of(s, "line/ghost")) >= 4 and len(of(s, "line/oven")) >= 20,
            timeout=20,
        )
    for sample in of(samples, "line/oven"):
        assert_values(sample, OVEN_VALUES)  # good on every poll, ghost or not
    for sample in of(samples, "line/ghost"):
        reading = sample.readings["zone1_temp"]
        assert reading.quality is Quality.BAD
        assert reading.reason == "unit 7 holding 0+2: no reply within 1.0 s"
    assert hub.link.failures == 0 and hub.reconnects == 1  # a silent unit is not a dead bus
    assert hub.devices[1].stats.consecutive_failures >= 4


async def test_exception_answer_marks_only_that_block_bad(
    pty_pair: PtyPair, tmp_path: Path
) -> None:
    slaves_end, hub_end = pty_pair.a, pty_pair.b
    extra = [*OVEN_TAGS, {"name": "unmapped", "address": 100, "type": "uint16"}]
    oven = device("oven", 1, write_map(tmp_path / "oven.toml", extra))
    async with serial_slaves(slaves_end, [oven_device()]):
        hub = ModbusHub(rtu_plc(hub_end, oven))
        sample = await hub.poll_once()
        hub.transport.close()
    assert sample.readings["unmapped"].quality is Quality.BAD
    assert "exception 2 (illegal data address) to unit 1 holding 100+1" in (
        sample.readings["unmapped"].reason
    )
    assert sample.readings["airflow"].value == OVEN_VALUES["airflow"]
    assert hub.stats.consecutive_failures == 0


async def test_unplugged_adapter_takes_the_link_down(pty_pair: PtyPair, tmp_path: Path) -> None:
    slaves_end, hub_end = pty_pair.a, pty_pair.b
    oven = device("oven", 1, write_map(tmp_path / "oven.toml", OVEN_TAGS))
    async with serial_slaves(slaves_end, [oven_device()]):
        hub = ModbusHub(rtu_plc(hub_end, oven))
        assert_values(await hub.poll_once(), OVEN_VALUES)
        # the "adapter" goes away: socat dies, the pty hangs up, the link file disappears
        pty_pair.unplug()
        lost = await hub.poll_once()
        again = await hub.poll_once()
        hub.transport.close()
    reason = lost.readings["airflow"].reason
    assert lost.readings["airflow"].quality is Quality.BAD
    assert hub_end in reason, reason
    assert hub.link.failures >= 1 and not hub.transport.connected
    assert again.readings["airflow"].quality is Quality.BAD


# --- against a hand-written slave: late, cut and garbled answers ----------------------------

Script = Callable[[int, bytes], list[tuple[float, bytes]]]


def answer(unit: int, function: int, registers: list[int]) -> bytes:
    """A register answer frame, written out from the spec."""
    body = bytes([unit, function, 2 * len(registers)])
    body += b"".join(r.to_bytes(2, "big") for r in registers)
    return body + crc16(body).to_bytes(2, "little")


class FakeSlave:
    """An RTU slave on a pty, by hand: for the n-th request (from 1), `script(n, request)`
    lists the writes to make, each as (delay in seconds, bytes)."""

    def __init__(self, path: str, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.writes = 0
        self._port = serial.Serial(path, BAUD, timeout=0.01)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-slave", daemon=True)

    def __enter__(self) -> FakeSlave:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._port.close()

    def _serve(self) -> None:
        pending = bytearray()
        while not self._stop.is_set():
            pending += self._port.read(64)
            while len(pending) >= 8:  # every read request is 8 bytes
                request = bytes(pending[:8])
                del pending[:8]
                self.requests.append(request)
                for delay, data in self.script(len(self.requests), request):
                    if self._stop.wait(delay):
                        return
                    self._port.write(data)
                    self.writes += 1


TWO_REGISTERS = [
    {"name": "first", "address": 0, "type": "uint16"},
    {"name": "second", "address": 1, "type": "uint16"},
]
FRESH_BEFORE, STALE, FRESH_AFTER = [1, 2], [666, 667], [3, 4]


def values(sample: Sample) -> list[float]:
    return [sample.readings["first"].value, sample.readings["second"].value]


@pytest.mark.parametrize("cut", [False, True], ids=["whole-answer-late", "answer-cut-rest-late"])
async def test_a_late_answer_is_never_taken_for_the_next(
    pty_pair: PtyPair, tmp_path: Path, cut: bool
) -> None:
    stale = answer(1, 3, STALE)
    late_writes = (
        [(0.0, stale[:4]), (TIMEOUT_S + 0.1, stale[4:])] if cut else [(TIMEOUT_S + 0.1, stale)]
    )

    def script(n: int, request: bytes) -> list[tuple[float, bytes]]:
        if n == 1:
            return [(0.0, answer(1, 3, FRESH_BEFORE))]
        if n == 2:
            return late_writes  # only after the hub gave up on it
        return [(0.0, answer(1, 3, FRESH_AFTER))]

    unit = device("tank", 1, write_map(tmp_path / "tank.toml", TWO_REGISTERS))
    hub = ModbusHub(rtu_plc(pty_pair.b, unit))
    with FakeSlave(pty_pair.a, script) as slave:
        first = await hub.poll_once()
        second = await hub.poll_once()
        # the stale answer is now on the wire, and through socat into the hub's input
        await wait_for(lambda: slave.writes >= 1 + len(late_writes), timeout=5, step=0.01)
        await asyncio.sleep(0.05)
        third = await hub.poll_once()
        hub.transport.close()
    assert values(first) == FRESH_BEFORE
    reason = second.readings["first"].reason
    assert second.readings["first"].quality is Quality.BAD
    if cut:
        assert reason.startswith(f"unit 1 holding 0+2: no complete reply within {TIMEOUT_S} s")
    else:
        assert reason == f"unit 1 holding 0+2: no reply within {TIMEOUT_S} s"
    assert third.readings["first"].quality is Quality.GOOD, third.readings["first"].reason
    assert values(third) == FRESH_AFTER  # fresh, never the stale 666
    assert slave.requests == [bytes.fromhex("01 03 00 00 00 02 c4 0b")] * 3
    assert hub.link.failures == 0


GOOD_FRESH = answer(1, 3, FRESH_AFTER)


@pytest.mark.parametrize(
    ("garbled", "reason"),
    [
        (GOOD_FRESH[:-1] + bytes([GOOD_FRESH[-1] ^ 0x40]), "bad CRC"),
        (answer(9, 3, STALE), "answer from unit 9"),
        (answer(1, 4, STALE), "answer has function code 4, not 3"),
        (answer(1, 3, STALE[:1]), "byte count 2, expected 4"),
        (bytes.fromhex("01 83 02 00 00"), "bad CRC"),  # an exception frame with a bad CRC
    ],
    ids=["bad-crc", "other-unit", "other-function", "byte-count", "exception-bad-crc"],
)
async def test_a_garbled_answer_is_bad_and_the_next_poll_is_good(
    pty_pair: PtyPair, tmp_path: Path, garbled: bytes, reason: str
) -> None:
    def script(n: int, request: bytes) -> list[tuple[float, bytes]]:
        return [(0.0, garbled if n == 1 else GOOD_FRESH)]

    unit = device("tank", 1, write_map(tmp_path / "tank.toml", TWO_REGISTERS))
    hub = ModbusHub(rtu_plc(pty_pair.b, unit))
    with FakeSlave(pty_pair.a, script):
        loop = asyncio.get_running_loop()
        started = loop.time()
        bad = await hub.poll_once()
        took = loop.time() - started
        good = await hub.poll_once()
        hub.transport.close()
    assert bad.readings["first"].quality is Quality.BAD
    assert reason in bad.readings["first"].reason
    assert took < TIMEOUT_S  # refused on sight (plus a short drain), not timed out
    assert good.readings["first"].quality is Quality.GOOD, good.readings["first"].reason
    assert values(good) == FRESH_AFTER
    assert hub.link.failures == 0 and hub.stats.consecutive_failures == 0


# --- RTU over TCP ---------------------------------------------------------------------------


def tcp_plc(port: int, *devices: DeviceConfig, timeout_s: float = TIMEOUT_S) -> PlcConfig:
    return PlcConfig(
        name="line",
        protocol="modbus-rtu-over-tcp",
        host="127.0.0.1",
        port=port,
        serial=None,
        timeout_s=timeout_s,
        max_backoff_s=0.2,
        poll_interval_s=0.02,
        devices=devices,
    )


async def test_rtu_over_tcp_two_slaves(tmp_path: Path) -> None:
    port = free_port()
    server = ModbusTcpServer(
        [oven_device(), press_device()], framer=FramerType.RTU, address=("127.0.0.1", port)
    )
    await server.serve_forever(background=True)
    try:
        oven = device("oven", 1, write_map(tmp_path / "oven.toml", OVEN_TAGS))
        press = device("press", 2, write_map(tmp_path / "press.toml", PRESS_TAGS))
        # The slaves share this event loop: on a loaded CI machine an answer can take longer
        # than the fault tests' 0.2 s, and a timeout is not what this test is about.
        hub = ModbusHub(tcp_plc(port, oven, press, timeout_s=HAPPY_TIMEOUT_S))
        assert hub.transport.description == f"modbus-rtu-over-tcp 127.0.0.1:{port}"
        samples = await run_hub(
            hub,
            lambda s: min(len(of(s, "line/oven")), len(of(s, "line/press"))) >= 30,
            timeout=20,
        )
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
    for sample in of(samples, "line/oven"):
        assert_values(sample, OVEN_VALUES)
    for sample in of(samples, "line/press"):
        assert_values(sample, PRESS_VALUES)
    assert hub.link.failures == 0


class FakeDeviceServer:
    """A serial device server in "TCP server" mode with one hand-written slave behind it:
    RTU frames over TCP, answered as `script(n, request)` says (like `FakeSlave`)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.writes = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> FakeDeviceServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                request = await reader.readexactly(8)
                self.requests.append(request)
                for delay, data in self.script(len(self.requests), request):
                    await asyncio.sleep(delay)
                    writer.write(data)
                    await writer.drain()
                    self.writes += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_rtu_over_tcp_late_and_garbled_answers(tmp_path: Path) -> None:
    """The 2nd request is answered late (stale values), the 4th with a bad CRC."""

    def script(n: int, request: bytes) -> list[tuple[float, bytes]]:
        if n == 2:
            return [(TIMEOUT_S + 0.1, answer(1, 3, STALE))]
        if n == 4:
            return [(0.0, GOOD_FRESH[:-2] + b"\x00\x00")]
        return [(0.0, answer(1, 3, FRESH_BEFORE if n == 1 else FRESH_AFTER))]

    tank = device("tank", 1, write_map(tmp_path / "tank.toml", TWO_REGISTERS))
    async with FakeDeviceServer(script) as server:
        hub = ModbusHub(tcp_plc(server.port, tank))
        first = await hub.poll_once()
        late = await hub.poll_once()
        await wait_for(lambda: server.writes >= 2, timeout=5, step=0.01)
        await asyncio.sleep(0.05)  # the stale answer is in the hub's socket buffer
        after_late = await hub.poll_once()
        garbled = await hub.poll_once()
        after_garbled = await hub.poll_once()
        hub.transport.close()
    assert values(first) == FRESH_BEFORE
    assert late.readings["first"].reason == f"unit 1 holding 0+2: no reply within {TIMEOUT_S} s"
    assert values(after_late) == FRESH_AFTER  # never the stale 666
    assert "bad CRC" in garbled.readings["first"].reason
    assert values(after_garbled) == FRESH_AFTER
    assert hub.link.failures == 0 and hub.reconnects == 1


def slow_first(n: int, request: bytes) -> list[tuple[float, bytes]]:
    """Answer the 1st request in 0.1 s (within the timeout) with stale values, then at once."""
    if n == 1:
        return [(0.1, answer(1, 3, STALE))]
    return [(0.0, answer(1, 3, FRESH_AFTER))]


async def cancel_then_read(transport: ModbusTransport) -> list[int]:
    """Start a read, cancel it while its answer is still coming, read again at once."""
    await transport.connect()
    try:
        cancelled = asyncio.create_task(transport.read_registers(1, "holding", 0, 2))
        await asyncio.sleep(0.02)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        return await transport.read_registers(1, "holding", 0, 2)
    finally:
        transport.close()


async def test_a_cancelled_read_leaves_no_answer_behind_serial(pty_pair: PtyPair) -> None:
    settings = SerialSettings(
        port=pty_pair.b, baudrate=BAUD, parity="N", bytesize=8, stopbits=1, inter_frame_s=0.002
    )
    with FakeSlave(pty_pair.a, slow_first) as slave:
        fresh = await cancel_then_read(SerialRtuTransport(settings, TIMEOUT_S))
    # the I/O thread finished the cancelled exchange (taking its answer) before the next
    assert fresh == FRESH_AFTER
    assert len(slave.requests) == 2


async def test_a_cancelled_read_leaves_no_answer_behind_tcp() -> None:
    async with FakeDeviceServer(slow_first) as server:
        fresh = await cancel_then_read(RtuOverTcpTransport("127.0.0.1", server.port, TIMEOUT_S))
    assert fresh == FRESH_AFTER
    assert len(server.requests) == 2


async def test_a_missing_serial_port_is_a_link_failure_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    tank = device("tank", 1, write_map(tmp_path / "tank.toml", TWO_REGISTERS))
    hub = ModbusHub(rtu_plc(missing, tank))
    sample = await hub.poll_once()
    reason = sample.readings["first"].reason
    assert sample.readings["first"].quality is Quality.BAD
    assert reason.startswith(f"cannot open serial port {missing}: ")
    assert "No such file or directory" in reason
    assert hub.link.failures >= 1 and not hub.transport.connected


async def test_rtu_over_tcp_refused_is_a_link_failure(tmp_path: Path) -> None:
    port = free_port()  # nothing listens
    tank = device("tank", 1, write_map(tmp_path / "tank.toml", TWO_REGISTERS))
    hub = ModbusHub(tcp_plc(port, tank))
    sample = await hub.poll_once()
    reason = sample.readings["first"].reason
    assert sample.readings["first"].quality is Quality.BAD
    assert f"connect to 127.0.0.1:{port} failed" in reason
    assert hub.link.failures >= 1 and not hub.transport.connected
