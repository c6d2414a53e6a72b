"""Signals/<tag>/TimeToLimit through a real asyncua client: the drift forecast of the pipeline's
own forecaster, seconds while a tag drifts, empty (BadNoData) when it does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from asyncua import ua

from agent.pipeline.forecasts import DriftForecaster
from agent.pipeline.line import LineResult
from agent.sinks.scada import ScadaServer
from agent.types import TagReading
from tests.helpers import free_port
from tests.scada_helpers import (
    LINE,
    PASSWORDS,
    client_certificate,
    node,
    scada_config,
    secure_client,
    site_tags,
    trust,
)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ScadaServer, Path, Path, str, list[str]]]:
    config = scada_config(tmp_path, free_port())
    tags = site_tags()
    channels = [t.name for t in tags if t.name != "line_running"]
    server = ScadaServer(config, LINE, tags, channels, "7 (test)", threshold=4.0)
    await server.start()
    task = asyncio.create_task(server.run())
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    try:
        yield server, cert, key, uri, channels
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def ramp_results(channels: list[str], drifting: bool) -> list[LineResult]:
    """60 rows of a line whose barrel_temp climbs 0.05 degC/s (or stays put) toward 215."""
    n = len(channels)
    forecaster = DriftForecaster(channels, np.full(n, 200.0), np.full(n, 215.0), np.full(n, 0.1))
    rng = np.random.default_rng(3)
    out = []
    start = time.time() - 60.0
    for k in range(60):
        row = np.full(n, 205.0) + 0.05 * rng.standard_normal(n)
        if drifting:
            row[channels.index("barrel_temp")] += 0.05 * k
        ts = start + k
        out.append(
            LineResult(
                ts=ts,
                readings={c: TagReading(float(v)) for c, v in zip(channels, row, strict=True)},
                spc_states={c: "in-control" for c in channels},
                scores={},
                alarms={"vae": False, "spc": False},
                events=(),
                forecasts=dict(forecaster.update(ts, row)),
            )
        )
    return out


async def test_time_to_limit_of_a_drifting_tag_and_empty_otherwise(served: tuple) -> None:
    server, cert, key, uri, channels = served
    client = await secure_client(server.config.endpoint, cert, key, uri, "ada", PASSWORDS["ada"])
    results = ramp_results(channels, drifting=True)
    last = results[-1]
    expected = last.forecasts["barrel_temp"].seconds
    assert set(last.forecasts) == {"barrel_temp"}
    # 205 + 0.05 x 59 = 207.95 now; 215 is about 141 s away at 0.05 degC/s
    assert 120.0 < expected < 160.0
    async with client:
        ttl = await node(client, f"Lines/{LINE}/Signals/barrel_temp/TimeToLimit")
        other = await node(client, f"Lines/{LINE}/Signals/screw_speed/TimeToLimit")
        for r in results:
            server.offer(r)
        deadline = time.monotonic() + 5.0
        while True:
            value = await ttl.read_data_value(raise_on_bad_status=False)
            if value.StatusCode.is_good() and value.Value.Value == pytest.approx(expected):
                break
            assert time.monotonic() < deadline, f"TimeToLimit never {expected}: {value}"
            await asyncio.sleep(0.05)
        flat = await other.read_data_value(raise_on_bad_status=False)
        assert flat.StatusCode.value == ua.StatusCodes.BadNoData
        assert flat.Value.Value is None

        for r in ramp_results(channels, drifting=False):
            server.offer(r)
        deadline = time.monotonic() + 5.0
        while (await ttl.read_data_value(raise_on_bad_status=False)).StatusCode.is_good():
            assert time.monotonic() < deadline, "TimeToLimit still set after the drift ended"
            await asyncio.sleep(0.05)
        gone = await ttl.read_data_value(raise_on_bad_status=False)
        assert gone.StatusCode.value == ua.StatusCodes.BadNoData
