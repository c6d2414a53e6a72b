"""The same link faults against libmodbus (C), a Modbus implementation independent of pymodbus:
the process server is killed (a PLC losing power) and started again on its port. Per fault:
each reading's quality and status code, the time its sample carries (its own poll's; the
pipeline stamps each reading with it, agent/pipeline/readings.py), and the time to
Bad and back to Good as bounds derived from the configured timeout, poll and backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncua import ua

from agent.config import DeviceConfig, PlcConfig, load_tag_map
from agent.sinks.scada.limits import status_of
from agent.sources.modbus import ModbusHub
from agent.types import Quality, Sample
from tests.helpers import free_port, wait_for
from tests.libmodbus_helpers import FIXTURES, ServerProcess, build_server

TAGS = """
[[tag]]
name = "pressure"
address = 0
type = "float32"
range = [0.0, 400.0]

[[tag]]
name = "cycles"
address = 7
type = "uint16"
role = "counter"
"""
POLL_S, TIMEOUT_S, MAX_BACKOFF_S = 0.1, 0.2, 0.8
SLACK_S = 0.5  # scheduling on a loaded two-core machine: bounds, not speed


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_server(FIXTURES / "libmodbus_process.c", tmp_path_factory.mktemp("lm") / "p")


@pytest.fixture
def server(binary: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(binary, free_port())
    proc.start()
    yield proc
    proc.kill()


async def test_a_killed_libmodbus_plc_goes_bad_and_comes_back_good_within_bounds(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "map.toml"
    path.write_text(TAGS)
    device = DeviceConfig("press", 1, POLL_S, load_tag_map(path), 8, 125, 2000)
    config = PlcConfig(
        name="c-plc", protocol="modbus-tcp", host="127.0.0.1", port=server.port, serial=None,
        timeout_s=TIMEOUT_S, max_backoff_s=MAX_BACKOFF_S, poll_interval_s=POLL_S,
        devices=(device,),
    )  # fmt: skip
    hub = ModbusHub(config)
    samples: list[tuple[float, Sample]] = []
    task = asyncio.create_task(hub.run(lambda s: samples.append((time.time(), s))))
    try:
        await wait_for(lambda: any(_good(s) for _, s in samples), timeout=5)
        for received, sample in samples:  # each sample carries its own poll's time
            assert received - POLL_S - TIMEOUT_S - SLACK_S <= sample.ts <= received
        killed = time.time()
        server.kill()
        await wait_for(lambda: _first(samples, killed, good=False) is not None, timeout=10)
        at, bad = _first(samples, killed, good=False) or (0.0, None)
        assert bad is not None
        assert at - killed <= POLL_S + TIMEOUT_S + SLACK_S
        reading = bad.readings["pressure"]
        assert reading.quality is Quality.BAD and reading.reason
        assert status_of(reading) == ua.StatusCodes.BadNoCommunication
        assert killed <= bad.ts <= at  # stamped with the failed poll's own time
        server.start()
        back = time.time()
        await wait_for(lambda: _first(samples, back, good=True) is not None, timeout=10)
        at, good = _first(samples, back, good=True) or (0.0, None)
        assert good is not None and at - back <= MAX_BACKOFF_S + POLL_S + TIMEOUT_S + SLACK_S
        assert 170.0 < good.readings["pressure"].value < 190.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        hub.transport.close()


def _good(sample: Sample) -> bool:
    return all(r.quality is Quality.GOOD for r in sample.readings.values())


def _first(
    samples: list[tuple[float, Sample]], after: float, good: bool
) -> tuple[float, Sample] | None:
    return next(((t, s) for t, s in samples if t > after and _good(s) is good), None)
