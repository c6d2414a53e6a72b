"""What SCADA reads of each value through a real asyncua client: the time of its own poll as
SourceTimestamp (two PLCs at different rates), ServerTimestamp apart, the last value under a
Bad status, the status code of each kind of fault, integer types for status words and
counters, and alarm flags that turn Uncertain when the line was not judged for a window."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import UaStatusCodeError

from agent.config import DetectionConfig, load_tag_map
from agent.core.quality import judge
from agent.core.spc import ImrLimits
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.detectors.vae import VaeDetector
from agent.pipeline.line import LineMonitor
from agent.sinks.scada import ScadaServer
from agent.types import Event, EventKind, EventState, Quality, Sample, Score, TagReading
from tests.helpers import free_port, wait_for
from tests.scada_helpers import (
    LINE,
    PASSWORDS,
    client_certificate,
    node,
    scada_config,
    secure_client,
    trust,
)

TAGS = """
[[tag]]
name = "speed"
address = 0
type = "float32"
unit = "rpm"
range = [0.0, 150.0]

[[tag]]
name = "temp"
address = 2
type = "float32"
unit = "degC"

[[tag]]
name = "state_word"
address = 4
type = "uint16"
role = "status"

[[tag]]
name = "parts"
address = 5
type = "uint32"
role = "counter"
"""
CHANNELS = ["speed", "temp"]
WINDOW = 3
FAST, SLOW = "plc-a/main", "plc-b/oven"


class FlatModel:
    def score_one(self, window: np.ndarray) -> Score:
        return Score(0.5, 1.0, (0.2, 0.3))


@dataclass
class Rig:
    server: ScadaServer
    monitor: LineMonitor
    client: Client

    async def feed(self, sample: Sample) -> None:
        self.server.offer(self.monitor.process(sample))
        await asyncio.sleep(0.05)

    async def read(self, path: str) -> ua.DataValue:
        return await (await node(self.client, path)).read_data_value(raise_on_bad_status=False)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    (tmp_path / "map.toml").write_text(TAGS)
    tags = list(load_tag_map(tmp_path / "map.toml").tags)
    config = scada_config(tmp_path, free_port())
    server = ScadaServer(config, LINE, tags, CHANNELS, "1 (test)", threshold=1.0)
    await server.start()
    task = asyncio.create_task(server.run())
    limits = ImrLimits(np.array([100.0, 50.0]), np.array([5.0, 2.0]), np.array([5.0, 2.0]))
    monitor = LineMonitor(
        LINE, CHANNELS, VaeDetector(FlatModel(), WINDOW, 2), SpcDetector(limits),
        DetectionConfig(), clock=FAST,
    )  # fmt: skip
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    client = await secure_client(config.endpoint, cert, key, uri, "ada", PASSWORDS["ada"])
    await client.connect()
    try:
        yield Rig(server, monitor, client)
    finally:
        await client.disconnect()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def fast(ts: float, speed: Any = 100.0, state: int = 5, parts: int = 70_000) -> Sample:
    reading = speed if isinstance(speed, TagReading) else judge(speed, (0.0, 150.0))
    return Sample(
        ts, FAST,
        {"speed": reading, "state_word": TagReading(float(state)),
         "parts": TagReading(float(parts))},
    )  # fmt: skip


def slow(ts: float, temp: float = 50.0) -> Sample:
    return Sample(ts, SLOW, {"temp": TagReading(temp)})


async def test_each_value_carries_its_own_poll_time(rig: Rig) -> None:
    t0 = time.time() - 10.0
    await rig.feed(slow(t0))
    for i in range(4):
        await rig.feed(fast(t0 + 0.5 * (i + 1), speed=100.0 + i))
    speed, temp = (
        await rig.read(f"Lines/{LINE}/Signals/speed/Value"),
        await rig.read(f"Lines/{LINE}/Signals/temp/Value"),
    )
    assert speed.SourceTimestamp == utc(t0 + 2.0) and speed.Value.Value == 103.0
    assert temp.SourceTimestamp == utc(t0)  # the slow PLC's poll, not the fast one's
    assert temp.ServerTimestamp is not None and temp.ServerTimestamp > temp.SourceTimestamp
    score = await rig.read(f"Lines/{LINE}/AnomalyScore")
    assert score.SourceTimestamp == utc(t0 + 2.0)  # the row's time


async def test_status_words_and_counters_keep_integer_types(rig: Rig) -> None:
    await rig.feed(fast(time.time(), state=0x8001, parts=4_000_000_000))
    word = await rig.read(f"Lines/{LINE}/Signals/state_word/Value")
    parts = await rig.read(f"Lines/{LINE}/Signals/parts/Value")
    assert (word.Value.VariantType, word.Value.Value) == (ua.VariantType.UInt16, 0x8001)
    assert (parts.Value.VariantType, parts.Value.Value) == (ua.VariantType.UInt32, 4_000_000_000)
    data_type = await (await node(rig.client, f"Lines/{LINE}/Signals/parts/Value")).read_data_type()
    assert data_type == ua.NodeId(ua.ObjectIds.UInt32)


async def test_each_fault_keeps_the_last_value_under_its_own_code(rig: Rig) -> None:
    now = time.time()
    await rig.feed(slow(now))
    await rig.feed(fast(now, speed=99.0))
    path = f"Lines/{LINE}/Signals/speed/Value"
    for i, (reading, code) in enumerate(
        (
            (TagReading(math.nan, Quality.BAD, "unit 1 holding 0+6: no reply within 1.0 s"),
             ua.StatusCodes.BadTimeout),
            (TagReading(math.nan, Quality.BAD, "connect to 127.0.0.1:1502 failed: [Errno 111] "
                        "Connect call failed"), ua.StatusCodes.BadNoCommunication),
            (judge(math.nan, (0.0, 150.0)), ua.StatusCodes.BadSensorFailure),
            (judge(math.inf, (0.0, 150.0)), ua.StatusCodes.BadSensorFailure),
        )
    ):  # fmt: skip
        at = now + 1.0 + i
        await rig.feed(fast(at, speed=reading))
        value = await rig.read(path)
        assert value.StatusCode.value == code, reading.reason
        assert value.Value.Value == 99.0  # the last value, never null
        assert value.SourceTimestamp == utc(at)  # when it was last known bad
    await rig.feed(fast(now + 9.0, speed=3.4e38))
    value = await rig.read(path)
    assert value.StatusCode.value == ua.StatusCodes.UncertainEngineeringUnitsExceeded
    assert value.Value.Value == pytest.approx(3.4e38, rel=1e-6)  # what the PLC said, flagged
    quality = await (await node(rig.client, f"Lines/{LINE}/Signals/speed/Quality")).read_value()
    assert quality.startswith("uncertain: ") and "outside its range 0..150" in quality


async def test_flags_turn_uncertain_once_the_line_was_not_judged_for_a_window(rig: Rig) -> None:
    t = time.time()
    await rig.feed(slow(t))
    for i in range(WINDOW):
        await rig.feed(fast(t + i))
    flag = f"Lines/{LINE}/AnomalyActive"
    assert (await rig.read(flag)).StatusCode.value == ua.StatusCodes.Good
    bad = TagReading(math.nan, Quality.BAD, "no reply within 1.0 s")
    await rig.feed(fast(t + 10, speed=bad))  # one bad poll: bridged, still judged
    assert (await rig.read(flag)).StatusCode.value == ua.StatusCodes.Good
    for i in range(WINDOW + 1):
        await rig.feed(fast(t + 11 + i, speed=bad))
    assert (await rig.read(flag)).StatusCode.value == ua.StatusCodes.UncertainLastUsableValue
    score = await rig.read(f"Lines/{LINE}/AnomalyScore")
    assert score.StatusCode.value == ua.StatusCodes.UncertainLastUsableValue
    assert score.Value.Value == 0.5  # the last score, marked as such
    health = await (await node(rig.client, "Agent/Health")).read_value()
    assert "not judged" in health and "speed" in health
    for i in range(WINDOW):
        await rig.feed(fast(t + 20 + i))
    assert (await rig.read(flag)).StatusCode.value == ua.StatusCodes.Good
    assert await (await node(rig.client, "Agent/Health")).read_value() == "ok"


ACK = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)


class Events:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def event_notification(self, event: Any) -> None:
        self.events.append(event)


def edge(state: EventState) -> Event:
    return Event(
        ts=time.time() - 3.0, line=LINE, kind=EventKind.ANOMALY, state=state, detector="vae",
        severity=700, message=f"anomaly {state.value}", tag="speed",
    )  # fmt: skip


async def test_event_ids_are_the_journals_and_a_condition_never_raised_is_unknown(
    rig: Rig, tmp_path: Path
) -> None:
    config = rig.server.config
    cert, key, uri = client_certificate(tmp_path / "operator", "op")
    trust(config, cert)
    operator = await secure_client(config.endpoint, cert, key, uri, "otto", PASSWORDS["otto"])
    async with operator:
        seen = Events()
        sub = await operator.create_subscription(50, seen)
        ns = await operator.get_namespace_index("urn:lineside")
        await sub.subscribe_events(
            operator.nodes.server, operator.get_node(f"ns={ns};s=Types/LinesideAnomalyAlarmType")
        )
        spc = await node(operator, f"Lines/{LINE}/Alarms/Spc")
        with pytest.raises(UaStatusCodeError) as never:
            await spc.call_method(ACK, b"anything", ua.LocalizedText("never raised"))
        assert never.value.code == ua.StatusCodes.BadEventIdUnknown
        raised, cleared = edge(EventState.RAISED), edge(EventState.CLEARED)
        rig.server.offer_event(raised)
        await wait_for(lambda: len(seen.events) == 1, 5)
        assert seen.events[0].EventId == raised.event_id.encode()
        assert seen.events[0].Time == utc(raised.ts)  # when the edge happened, not when sent
        anomaly = await node(operator, f"Lines/{LINE}/Alarms/Anomaly")
        await anomaly.call_method(ACK, raised.event_id.encode(), ua.LocalizedText("seen"))
        await wait_for(lambda: len(seen.events) == 2, 5)
        assert seen.events[1].EventId == f"{raised.event_id}:ack1".encode()
        rig.server.offer_event(cleared)
        await wait_for(lambda: len(seen.events) == 3, 5)
        assert seen.events[2].EventId == cleared.event_id.encode()
