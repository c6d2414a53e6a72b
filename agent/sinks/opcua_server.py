"""The SCADA face: a local OPC-UA server publishing values, scores, SPC states and alarms.

Address space (namespace `opcua.namespace`, string node ids equal to the browse path, so an
integrator can type them into a SCADA tag list):

    Objects/Lines/<line>/Signals/<tag>/Value                Double, status code = quality
                                      /Quality              String: good | bad: <reason>
                                      /SpcState             String: in-control | beyond-limits | ...
                                      /AnomalyContribution  Double
    Objects/Lines/<line>/AnomalyScore, Threshold            Double
                        /AnomalyActive, SpcAlarmActive, AlarmActive   Boolean
                        /ModelVersion, LastEvent           String
                        /LastExplanation, LastExplanationEvent   String (explainer, later)
    Objects/Agent/LoopLatencyMs, SamplesProcessed, SampleQueueDrops, PublishCoalesced

Overflow policy: `offer` stores the newest line result and wakes the publisher; results that
arrive while the publisher is busy are coalesced (only the newest is written) and counted.
Every node is read-only for clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import Server, ua

from agent.config import NodeTag, OpcUaConfig, Tag
from agent.errors import StartupError
from agent.monitor import LineResult
from agent.sources.codec import DataType
from agent.types import Quality

log = logging.getLogger(__name__)

_STATUS = {
    Quality.GOOD: ua.StatusCodes.Good,
    Quality.UNCERTAIN: ua.StatusCodes.UncertainSensorNotAccurate,
    Quality.BAD: ua.StatusCodes.BadNoCommunication,
}


def value_type(tag: Tag | NodeTag) -> ua.VariantType:
    """The OPC-UA type a tag's Value is published as."""
    if isinstance(tag, Tag) and tag.dtype is DataType.STRING:
        return ua.VariantType.String
    if isinstance(tag, Tag) and tag.dtype is DataType.BOOL:
        return ua.VariantType.Boolean
    return ua.VariantType.Double


@dataclass
class AgentCounters:
    """Agent health figures published under Objects/Agent."""

    loop_latency_ms: float = 0.0
    samples_processed: int = 0
    sample_queue_drops: int = 0


class ScadaServer:
    """Owns the asyncua server; `offer` never blocks the detection loop."""

    def __init__(
        self,
        config: OpcUaConfig,
        line: str,
        tags: Sequence[Tag | NodeTag],
        channels: list[str],
        model_version: str,
        threshold: float,
    ) -> None:
        self.config = config
        self.line = line
        self.tags = tags
        self.channels = channels
        self.model_version = model_version
        self.threshold = threshold
        self.counters = AgentCounters()
        self.coalesced = 0
        self._server = Server()
        self._ns = 0
        self._nodes: dict[str, ua.NodeId] = {}
        self._latest: LineResult | None = None
        self._wake = asyncio.Event()

    def node_id(self, path: str) -> ua.NodeId:
        """The NodeId of a published variable by its path below Objects."""
        return self._nodes[path]

    async def _folder(self, parent: Any, path: str, name: str, description: str) -> Any:
        node = await parent.add_object(ua.NodeId(path, self._ns), ua.QualifiedName(name, self._ns))
        await node.write_attribute(
            ua.AttributeIds.Description,
            ua.DataValue(ua.Variant(ua.LocalizedText(description), ua.VariantType.LocalizedText)),
        )
        return node

    async def _variable(
        self, parent: Any, path: str, name: str, value: Any, vtype: ua.VariantType, description: str
    ) -> None:
        blank = {ua.VariantType.String: "", ua.VariantType.Boolean: False}.get(vtype, 0.0)
        initial = ua.Variant(blank if value is None else value, vtype)
        node = await parent.add_variable(
            ua.NodeId(path, self._ns), ua.QualifiedName(name, self._ns), initial
        )
        await node.write_attribute(
            ua.AttributeIds.Description,
            ua.DataValue(ua.Variant(ua.LocalizedText(description), ua.VariantType.LocalizedText)),
        )
        if value is None:  # no reading yet: say so instead of showing a made-up 0
            await node.write_attribute(
                ua.AttributeIds.Value,
                ua.DataValue(
                    initial, StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
                ),
            )
        self._nodes[path] = node.nodeid

    async def start(self) -> None:
        """Build the address space and start listening."""
        server = self._server
        await server.init()
        server.set_endpoint(self.config.endpoint)
        server.set_server_name("Lineside edge agent")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self._ns = await server.register_namespace(self.config.namespace)
        objects = server.nodes.objects
        lines = await self._folder(objects, "Lines", "Lines", "Production lines Lineside watches")
        base = f"Lines/{self.line}"
        line = await self._folder(lines, base, self.line, f"Line {self.line}")
        signals = await self._folder(line, f"{base}/Signals", "Signals", "PLC tags of the line")
        for tag in self.tags:
            p = f"{base}/Signals/{tag.name}"
            folder = await self._folder(signals, p, tag.name, tag.description or tag.name)
            unit = f" [{tag.unit}]" if tag.unit else ""
            await self._variable(
                folder,
                f"{p}/Value",
                "Value",
                None,
                value_type(tag),
                f"{tag.description or tag.name}{unit}; status code carries the PLC quality",
            )
            await self._variable(
                folder,
                f"{p}/Quality",
                "Quality",
                "waiting for first read",
                ua.VariantType.String,
                "good, or bad with the reason from the PLC connection",
            )
            if tag.name in self.channels:
                await self._variable(
                    folder,
                    f"{p}/SpcState",
                    "SpcState",
                    "no-data",
                    ua.VariantType.String,
                    "Individuals/MR chart state: in-control or the rule broken",
                )
                await self._variable(
                    folder,
                    f"{p}/AnomalyContribution",
                    "AnomalyContribution",
                    0.0,
                    ua.VariantType.Double,
                    "This tag's share of the anomaly score",
                )
        for name, value, vtype, text in (
            ("AnomalyScore", 0.0, ua.VariantType.Double, "VAE reconstruction error of the window"),
            ("Threshold", self.threshold, ua.VariantType.Double, "Score above which it alarms"),
            ("AnomalyActive", False, ua.VariantType.Boolean, "VAE anomaly alarm"),
            ("SpcAlarmActive", False, ua.VariantType.Boolean, "SPC rule alarm"),
            ("AlarmActive", False, ua.VariantType.Boolean, "Any alarm of the line"),
            ("ModelVersion", self.model_version, ua.VariantType.String, "Running model bundle"),
            ("LastEvent", "", ua.VariantType.String, "Text of the last alarm edge"),
            ("LastExplanation", "", ua.VariantType.String, "The last alarm explained in words"),
            ("LastExplanationEvent", "", ua.VariantType.String, "Event id it explains"),
        ):
            await self._variable(line, f"{base}/{name}", name, value, vtype, text)
        agent = await self._folder(objects, "Agent", "Agent", "Health of the Lineside agent")
        for name, vtype, text in (
            ("LoopLatencyMs", ua.VariantType.Double, "Detection time of the last sample"),
            ("SamplesProcessed", ua.VariantType.UInt64, "Samples through the detection loop"),
            ("SampleQueueDrops", ua.VariantType.UInt64, "Samples dropped: loop fell behind"),
            ("PublishCoalesced", ua.VariantType.UInt64, "Results superseded before publishing"),
        ):
            zero = 0.0 if vtype is ua.VariantType.Double else 0
            await self._variable(agent, f"Agent/{name}", name, zero, vtype, text)
        # asyncua logs a failed start with a full traceback before raising; we report the
        # failure ourselves, in one line with the fix, so its logger is muted for this call.
        asyncua_log = logging.getLogger("asyncua.server.server")
        level = asyncua_log.level
        asyncua_log.setLevel(logging.CRITICAL)
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(
                f"OPC-UA server cannot listen on {self.config.endpoint}: {exc.strerror or exc} "
                "(fix: another process holds the port; change opcua.endpoint or stop it)"
            ) from exc
        finally:
            asyncua_log.setLevel(level)
        log.info("OPC-UA server listening on %s", self.config.endpoint)

    def offer(self, result: LineResult) -> None:
        """Hand over the newest result; never blocks, coalesces if the publisher is behind."""
        if self._latest is not None:
            self.coalesced += 1
        self._latest = result
        self._wake.set()

    async def _write(
        self,
        path: str,
        value: Any,
        vtype: ua.VariantType,
        status: int = ua.StatusCodes.Good,
        when: dt.datetime | None = None,
    ) -> None:
        datavalue = ua.DataValue(
            ua.Variant(value, vtype),
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=when,
            ServerTimestamp=when,
        )
        await self._server.write_attribute_value(self._nodes[path], datavalue)

    async def publish(self, result: LineResult) -> None:
        """Write one result into the address space (the server's internal write path)."""
        when = dt.datetime.fromtimestamp(result.ts, dt.UTC)
        base = f"Lines/{self.line}"
        D, S, B = ua.VariantType.Double, ua.VariantType.String, ua.VariantType.Boolean
        for tag in self.tags:
            reading = result.readings.get(tag.name)
            if reading is None:
                continue
            p = f"{base}/Signals/{tag.name}"
            status = _STATUS[reading.quality]
            vtype = value_type(tag)
            value: object = reading.value
            if vtype is S:
                value = reading.text or ""
            elif vtype is B:
                value = reading.value == 1.0
            await self._write(f"{p}/Value", value, vtype, status, when)
            text = (
                "good"
                if reading.quality is Quality.GOOD
                else (f"{reading.quality.value}: {reading.reason}")
            )
            await self._write(f"{p}/Quality", text, S, when=when)
        for i, channel in enumerate(self.channels):
            p = f"{base}/Signals/{channel}"
            await self._write(
                f"{p}/SpcState", result.spc_states.get(channel, "no-data"), S, when=when
            )
            if result.score is not None:
                await self._write(
                    f"{p}/AnomalyContribution", result.score.contributions[i], D, when=when
                )
        # Without good readings of every model tag the detectors cannot judge the line: the
        # alarm flags keep their last value but say it is only the last usable one.
        blind = any(
            result.readings.get(c) is None or result.readings[c].quality is not Quality.GOOD
            for c in self.channels
        )
        judged = ua.StatusCodes.UncertainLastUsableValue if blind else ua.StatusCodes.Good
        if result.score is not None:
            await self._write(f"{base}/AnomalyScore", result.score.value, D, when=when)
        for name, flag in (
            ("AnomalyActive", result.anomaly_active),
            ("SpcAlarmActive", result.spc_alarm_active),
            ("AlarmActive", result.alarm_active),
        ):
            await self._write(f"{base}/{name}", flag, B, judged, when)
        if result.events:
            await self._write(f"{base}/LastEvent", result.events[-1].message, S, when=when)
        c = self.counters
        await self._write("Agent/LoopLatencyMs", c.loop_latency_ms, D)
        await self._write("Agent/SamplesProcessed", c.samples_processed, ua.VariantType.UInt64)
        await self._write("Agent/SampleQueueDrops", c.sample_queue_drops, ua.VariantType.UInt64)
        await self._write("Agent/PublishCoalesced", self.coalesced, ua.VariantType.UInt64)

    async def publish_explanation(self, text: str, ts: float, event_id: str = "") -> None:
        """Write an alarm's explanation and the id of the event it belongs to."""
        when = dt.datetime.fromtimestamp(ts, dt.UTC)
        base = f"Lines/{self.line}"
        await self._write(f"{base}/LastExplanation", text, ua.VariantType.String, when=when)
        await self._write(
            f"{base}/LastExplanationEvent", event_id, ua.VariantType.String, when=when
        )

    async def run(self) -> None:
        """Publish the newest result whenever one is offered, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            result, self._latest = self._latest, None
            if result is not None:
                await self.publish(result)

    async def stop(self) -> None:
        """Stop the server and close client sessions."""
        with contextlib.suppress(Exception):
            await self._server.stop()
