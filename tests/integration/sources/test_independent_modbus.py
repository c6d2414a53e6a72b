"""Our Modbus TCP hub against libmodbus (C), an implementation independent of pymodbus.

The C server composes its registers by hand from the IEEE-754 bits (not with our codec, nor
with libmodbus's float helpers, whose names do not match the wire order on little-endian
hosts), so a byte- or word-order bug that our codec shared with pymodbus's server could not
make both ends agree by accident; framing, exceptions and bit packing are libmodbus's.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import DeviceConfig, PlcConfig, load_tag_map
from agent.sources.modbus import ModbusHub
from agent.types import Quality
from tests.helpers import free_port

SOURCE = Path(__file__).resolve().parents[2] / "fixtures" / "libmodbus_server.c"

TAG_MAP = """
[[tag]]
name = "f_abcd"
address = 0
type = "float32"
order = "ABCD"
[[tag]]
name = "f_dcba"
address = 2
type = "float32"
order = "DCBA"
[[tag]]
name = "f_badc"
address = 4
type = "float32"
order = "BADC"
[[tag]]
name = "f_cdab"
address = 6
type = "float32"
order = "CDAB"
[[tag]]
name = "i16"
address = 8
type = "int16"
[[tag]]
name = "u16_scaled"
address = 9
type = "uint16"
scale = 0.01
[[tag]]
name = "i32"
address = 10
type = "int32"
[[tag]]
name = "bit0"
address = 12
type = "bool"
bit = 0
[[tag]]
name = "bit1"
address = 12
type = "bool"
bit = 1
[[tag]]
name = "bit2"
address = 12
type = "bool"
bit = 2
[[tag]]
name = "label"
address = 13
type = "string"
length = 6
[[tag]]
name = "in_float"
table = "input"
address = 0
type = "float32"
[[tag]]
name = "coil0"
table = "coil"
address = 0
[[tag]]
name = "coil1"
table = "coil"
address = 1
[[tag]]
name = "coil6"
table = "coil"
address = 6
[[tag]]
name = "di1"
table = "discrete"
address = 1
[[tag]]
name = "di3"
table = "discrete"
address = 3
[[tag]]
name = "beyond_map"
address = 100
type = "uint16"
"""


@pytest.fixture(scope="module")
def server_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None or not Path("/usr/include/modbus/modbus.h").exists():
        pytest.fail("needs gcc and libmodbus-dev (make test installs the Debian packages)")
    out = tmp_path_factory.mktemp("libmodbus") / "server"
    built = subprocess.run(
        ["gcc", "-O1", "-Wall", "-Werror", "-I/usr/include/modbus", str(SOURCE), "-o", str(out),
         "-lmodbus"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return out


@pytest.fixture
def libmodbus_port(server_binary: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([str(server_binary), str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_hub_reads_every_layout_from_libmodbus(libmodbus_port: int, tmp_path: Path):
    path = tmp_path / "map.toml"
    path.write_text(TAG_MAP)
    device = DeviceConfig("libmodbus", 1, 0.5, load_tag_map(path), 8, 125, 2000)
    plc = PlcConfig(
        name="c-server", protocol="modbus-tcp", host="127.0.0.1", port=libmodbus_port,
        serial=None, timeout_s=0.3, max_backoff_s=1.0, poll_interval_s=0.5, devices=(device,),
    )  # fmt: skip
    hub = ModbusHub(plc)
    try:
        sample = await hub.poll_once()
    finally:
        hub.transport.close()
    r = sample.readings
    for name in ("f_abcd", "f_dcba", "f_badc", "f_cdab"):
        assert r[name].quality is Quality.GOOD, (name, r[name].reason)
        assert r[name].value == pytest.approx(123.456, rel=1e-6), name
    assert r["i16"].value == -1234
    assert r["u16_scaled"].value == pytest.approx(543.21)
    assert r["i32"].value == -123456789
    assert [r[f"bit{i}"].value for i in range(3)] == [1.0, 0.0, 1.0]
    assert r["label"].text == "LINE-7"
    assert r["in_float"].value == 98.5
    assert [r[n].value for n in ("coil0", "coil1", "coil6")] == [1.0, 0.0, 1.0]
    assert [r[n].value for n in ("di1", "di3")] == [1.0, 0.0]
    # libmodbus maps 32 holding registers: address 100 is an illegal data address
    assert r["beyond_map"].quality is Quality.BAD
    assert "illegal data address" in r["beyond_map"].reason
    assert math.isnan(r["beyond_map"].value)
    # holding 0..15 in one read, 100 in another; input, coil, discrete one read each
    assert len(hub.blocks) == 5
