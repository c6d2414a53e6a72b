"""The SCADA server through a real asyncua client: model, units, subscriptions, alarms, roles."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import BadUserAccessDenied, UaStatusCodeError

from agent.pipeline.line import LineResult
from agent.sinks.scada import ScadaServer
from agent.types import Event, EventKind, EventState, Quality, Score, TagReading
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

ACK = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)


@dataclass
class Rig:
    server: ScadaServer
    cert: Path
    key: Path
    uri: str
    channels: list[str]

    def client(self, user: str | None, password: str | None = None, **kw: Any) -> Any:
        return secure_client(
            self.server.config.endpoint, self.cert, self.key, self.uri, user,
            PASSWORDS.get(user or "", "") if password is None else password, **kw,
        )  # fmt: skip


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = scada_config(tmp_path, free_port())
    tags = site_tags()
    channels = [t.name for t in tags if t.name != "line_running"]
    server = ScadaServer(config, LINE, tags, channels, "7 (test)", threshold=4.0)
    await server.start()
    task = asyncio.create_task(server.run())
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    try:
        yield Rig(server, cert, key, uri, channels)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def result(channels: list[str], value: float, events: tuple[Event, ...] = ()) -> LineResult:
    readings = {c: TagReading(value + i) for i, c in enumerate(channels)}
    readings["melt_pressure"] = TagReading(float("nan"), Quality.BAD, "timed out after 0.5 s")
    return LineResult(
        ts=time.time(), readings=readings, spc_states={c: "in-control" for c in channels},
        scores={"vae": Score(1.5, 4.0, tuple(0.1 for _ in channels))},
        alarms={"vae": bool(events), "spc": False}, events=events,
    )  # fmt: skip


def anomaly(state: EventState) -> Event:
    return Event(
        ts=time.time(), line=LINE, kind=EventKind.ANOMALY, state=state, detector="vae",
        severity=700, message=f"anomaly {state.value}", tag="melt_temp",
    )  # fmt: skip


class Changes:
    def __init__(self) -> None:
        self.values: list[Any] = []
        self.events: list[Any] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(val)

    def event_notification(self, event: Any) -> None:
        self.events.append(event)


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_viewer_browses_units_ranges_and_subscribes(rig: Rig) -> None:
    async with await rig.client("ada") as client:
        signals = await node(client, f"Lines/{LINE}/Signals")
        names = {(await n.read_browse_name()).Name for n in await signals.get_children()}
        assert {"barrel_temp", "melt_pressure", "screw_speed"} <= names
        value = await node(client, f"Lines/{LINE}/Signals/barrel_temp/Value")
        assert await value.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
        units = await (await value.get_child("0:EngineeringUnits")).read_value()
        assert (units.UnitId, units.DisplayName.Text) == (4408652, "°C")  # UNECE CEL
        eu_range = await (await value.get_child("0:EURange")).read_value()
        assert (eu_range.Low, eu_range.High) == (-3276.8, 3276.7)  # int16 tenths of a degree
        description = await value.read_description()
        assert "Barrel zone 3 temperature [degC]" in description.Text
        first = await value.read_data_value(raise_on_bad_status=False)
        assert first.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData

        changes = Changes()
        sub = await client.create_subscription(50, changes)
        await sub.subscribe_data_change(value)
        rig.server.offer(result(rig.channels, 200.0))
        await until(lambda: 200.0 + rig.channels.index("barrel_temp") in changes.values)
        bad = await (
            await node(client, f"Lines/{LINE}/Signals/melt_pressure/Value")
        ).read_data_value(raise_on_bad_status=False)
        assert bad.StatusCode.value == ua.StatusCodes.BadTimeout  # the reason, as a status code
        quality = await node(client, f"Lines/{LINE}/Signals/melt_pressure/Quality")
        assert await quality.read_value() == "bad: timed out after 0.5 s"
        health = await node(client, "Agent/Health")
        assert "melt_pressure" in await health.read_value()

        rig.server.publish_explanation(
            "melt_temp is 12x its usual error", 1_767_225_600.0, "e-1", "wrong-number"
        )
        rig.server.publish_model("8", "running", "2026-01-01T00:00:00Z")
        explanation = await node(client, f"Lines/{LINE}/LastExplanation")

        async def published() -> bool:
            return await explanation.read_value() == "melt_temp is 12x its usual error"

        deadline = time.monotonic() + 5
        while not await published():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        stamp = await (await node(client, f"Lines/{LINE}/LastExplanationTime")).read_value()
        assert stamp.timestamp() == 1_767_225_600.0
        grounded = await node(client, f"Lines/{LINE}/LastExplanationGrounded")
        assert await grounded.read_value() is True
        guard = await node(client, f"Lines/{LINE}/LastExplanationGuard")
        assert await guard.read_value() == "wrong-number"  # the LLM's answer was refused
        assert await (await node(client, f"Lines/{LINE}/ModelVersion")).read_value() == "8"
        assert await (await node(client, f"Lines/{LINE}/ModelStatus")).read_value() == "running"


async def alarm_events(client: Client) -> tuple[Changes, Any]:
    changes = Changes()
    sub = await client.create_subscription(50, changes)
    ns = await client.get_namespace_index("urn:lineside")
    alarm_type = client.get_node(f"ns={ns};s=Types/LinesideAnomalyAlarmType")
    await sub.subscribe_events(client.nodes.server, alarm_type)
    return changes, sub


async def test_alarm_events_acknowledged_by_operator_refused_for_viewer(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lineside.audit")
    acks: list[tuple[str, str, str]] = []
    rig.server.on_acknowledge = lambda *ack: acks.append(ack)  # the agent journals them
    alarm = anomaly(EventState.RAISED)
    async with await rig.client("otto") as operator, await rig.client("ada") as viewer:
        seen, _ = await alarm_events(operator)
        rig.server.offer(result(rig.channels, 1.0, (alarm,)))
        await until(lambda: len(seen.events) == 1)
        raised = seen.events[0]
        assert raised.Severity == 700 and raised.Message.Text == "anomaly raised"
        assert getattr(raised, "ActiveState/Id") is True
        assert getattr(raised, "AckedState/Id") is False and raised.Retain is True
        condition = await node(operator, f"Lines/{LINE}/Alarms/Anomaly")
        assert (
            raised.SourceNode
            == (await node(operator, f"Lines/{LINE}/Signals/melt_temp/Value")).nodeid
        )

        as_viewer = await node(viewer, f"Lines/{LINE}/Alarms/Anomaly")
        with pytest.raises(BadUserAccessDenied):
            await as_viewer.call_method(ACK, raised.EventId, ua.LocalizedText("viewer tries"))
        await condition.call_method(ACK, raised.EventId, ua.LocalizedText("checked the die"))
        await until(lambda: len(seen.events) == 2)
        acked = seen.events[1]
        assert getattr(acked, "AckedState/Id") is True and acked.Retain is True  # still active
        assert acked.ClientUserId == "otto" and acked.Comment.Text == "checked the die"
        assert acks == [(alarm.event_id, "otto", "checked the die")]  # the viewer's try is not
        with pytest.raises(UaStatusCodeError) as again:
            await condition.call_method(ACK, acked.EventId, ua.LocalizedText("twice"))
        assert again.value.code == ua.StatusCodes.BadConditionBranchAlreadyAcked
        with pytest.raises(UaStatusCodeError) as stale:
            await condition.call_method(ACK, b"not-an-event", ua.LocalizedText(""))
        assert stale.value.code in (ua.StatusCodes.BadEventIdUnknown,
                                    ua.StatusCodes.BadConditionBranchAlreadyAcked)  # fmt: skip
        active = await condition.get_child(["0:ActiveState", "0:Id"])
        assert await active.read_value() is True  # the instance mirrors the event

        # A late subscriber gets the retained condition through ConditionRefresh.
        late, late_sub = await alarm_events(viewer)
        await viewer.get_node(ua.NodeId(ua.ObjectIds.ConditionType)).call_method(
            ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
            ua.Variant(late_sub.subscription_id, ua.VariantType.UInt32),
        )
        await until(lambda: any(getattr(e, "AckedState/Id", None) is True for e in late.events))

        rig.server.offer(result(rig.channels, 1.0, (anomaly(EventState.CLEARED),)))
        await until(lambda: len(seen.events) == 3)
        cleared = seen.events[2]
        assert getattr(cleared, "ActiveState/Id") is False and cleared.Retain is False
    audit = [r.getMessage() for r in caplog.records if r.name == "lineside.audit"]
    assert any("acknowledged: Anomaly alarm of line extruder-1 by otto" in m for m in audit)
    assert any("refused: user ada (viewer) may not call" in m for m in audit)
    assert any(m.startswith("login: user otto (operator)") for m in audit)


async def test_nobody_writes_values_or_adds_or_deletes_nodes(rig: Rig) -> None:
    async with await rig.client("otto") as client:
        value = await node(client, f"Lines/{LINE}/Signals/screw_speed/Value")
        threshold = await node(client, f"Lines/{LINE}/Threshold")
        for target, new in ((value, 1.0), (threshold, 1e9)):
            with pytest.raises(BadUserAccessDenied):
                await target.write_value(ua.DataValue(ua.Variant(new, ua.VariantType.Double)))
        with pytest.raises(BadUserAccessDenied):
            await client.nodes.objects.add_variable(ua.NodeId("Evil", 2), "Evil", 1.0)
        with pytest.raises(BadUserAccessDenied):
            await client.delete_nodes([value])
        assert await threshold.read_value() == 4.0
        assert (await value.read_browse_name()).Name == "Value"
