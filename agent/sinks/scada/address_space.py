"""The address space of the SCADA server: lines, signals, scores, model, agent health.

Node ids are strings equal to the browse path below Objects (see server.py for the layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import Node, Server, ua

from agent.config import NodeTag, Tag
from agent.core.codec import DataType
from agent.sinks.scada.limits import AGENT_VARIABLES
from agent.sinks.scada.model import ModelBuilder

D, S, B = ua.VariantType.Double, ua.VariantType.String, ua.VariantType.Boolean
T = ua.VariantType.DateTime


#: Integer register types and the OPC-UA type that holds every value of each.
INTEGER_TYPES = {
    DataType.INT16: ua.VariantType.Int16, DataType.UINT16: ua.VariantType.UInt16,
    DataType.INT32: ua.VariantType.Int32, DataType.UINT32: ua.VariantType.UInt32,
    DataType.INT64: ua.VariantType.Int64, DataType.UINT64: ua.VariantType.UInt64,
}  # fmt: skip
#: Roles whose values are whole numbers to SCADA: a status word's bits, a counter's count.
INTEGER_ROLES = ("status", "counter")


def value_type(tag: Tag | NodeTag) -> ua.VariantType:
    """The OPC-UA type a tag's Value is published as.

    A status word or a counter read from an integer register keeps an integer type (its own,
    or Int64 when an integer scale widens it); a scale or offset with a fraction makes it a
    Double like every process value."""
    if isinstance(tag, Tag) and tag.dtype is DataType.STRING:
        return ua.VariantType.String
    if isinstance(tag, Tag) and tag.dtype is DataType.BOOL:
        return ua.VariantType.Boolean
    if isinstance(tag, Tag) and tag.role in INTEGER_ROLES and tag.dtype in INTEGER_TYPES:
        scale, offset = tag.scaling.scale, tag.scaling.offset
        if scale == 1.0 and offset == 0.0:
            return INTEGER_TYPES[tag.dtype]
        if scale.is_integer() and offset.is_integer():
            return ua.VariantType.Int64
    return ua.VariantType.Double


@dataclass(frozen=True)
class LineSpec:
    """What one line's folder `Lines/<line>/` is built from."""

    line: str
    tags: Sequence[Tag | NodeTag]
    channels: list[str]
    threshold: float


async def build_address_space(
    server: Server, ns: int, lines: Sequence[LineSpec]
) -> tuple[dict[str, ua.NodeId], dict[str, Node]]:
    """Add every node of every line and the Agent object; return the node ids by path, and
    each line's object by line name."""
    build = ModelBuilder(server.iserver.isession, ns, bulk=True, aspace=server.iserver.aspace)
    objects = server.nodes.objects
    folder = await build.folder(objects, "Lines", "Lines", "Production lines Lineside watches")
    line_nodes = {spec.line: await _build_line(build, folder, spec) for spec in lines}
    agent = await build.folder(objects, "Agent", "Agent", "Health of the Lineside agent")
    for var in AGENT_VARIABLES:
        await build.variable(agent, f"Agent/{var.name}", var.name, var.vtype, var.text)
    await build.flush()
    return build.nodes, line_nodes


async def _build_line(build: ModelBuilder, lines: Node, spec: LineSpec) -> Node:
    """The folder of one line: its signals, scores, flags, model and learning nodes."""
    line_name, tags, channels, threshold = spec.line, spec.tags, spec.channels, spec.threshold
    base = f"Lines/{line_name}"
    line = await build.folder(lines, base, line_name, f"Line {line_name}: signals, scores, alarms")
    signals = await build.folder(line, f"{base}/Signals", "Signals", "PLC tags of the line")
    for tag in tags:
        p = f"{base}/Signals/{tag.name}"
        desc = tag.description or tag.name
        folder = await build.folder(signals, p, tag.name, desc)
        unit = f" [{tag.unit}]" if tag.unit else ""
        vdesc = f"{desc}{unit}, as read from the PLC; the status code carries its quality"
        if value_type(tag) is D:
            await build.analog(folder, f"{p}/Value", "Value", tag, vdesc)
        else:
            await build.variable(folder, f"{p}/Value", "Value", value_type(tag), vdesc)
        await build.variable(
            folder,
            f"{p}/Quality",
            "Quality",
            S,
            "good, or uncertain/bad with the reason from the PLC connection",
        )
        if tag.name in channels:
            await build.variable(
                folder,
                f"{p}/SpcState",
                "SpcState",
                S,
                "Individuals/MR chart: in-control, or the rule it broke",
            )
            await build.variable(
                folder,
                f"{p}/AnomalyContribution",
                "AnomalyContribution",
                D,
                "This tag's reconstruction error relative to normal",
            )
            await build.variable(
                folder,
                f"{p}/TimeToLimit",
                "TimeToLimit",
                D,
                "Seconds until this drifting tag reaches its next SPC or spec limit at the "
                "current rate; empty (BadNoData) when it does not drift",
            )
    for name, vtype, value, text in (
        ("AnomalyScore", D, None, "Anomaly score of the latest window (higher: more unusual)"),
        ("Threshold", D, threshold, "Anomaly score above which the anomaly alarm raises"),
        ("AnomalyActive", B, None, "True while the anomaly (VAE) alarm is active"),
        ("SpcAlarmActive", B, None, "True while an SPC rule alarm is active"),
        ("AlarmActive", B, None, "True while any alarm of the line is active"),
        ("LastEvent", S, None, "Text of the last alarm edge"),
        ("LastExplanation", S, None, "Plain-language explanation of the last anomaly"),
        ("LastExplanationTime", T, None, "When the last explanation was written"),
        ("LastExplanationEvent", S, None, "Event id of the alarm the last explanation is about"),
        ("LastExplanationGrounded", B, None, "True: every claim of it is in the facts"),
        ("LastExplanationGuard", S, None, "ok (LLM, guard passed) | template | why refused"),
        ("ModelVersion", S, None, "Version of the running model bundle"),
        ("ModelStatus", S, None, "Model bundle status: running, updating, rolled back, ..."),
        ("ModelLastUpdate", S, None, "When the model bundle was last installed (ISO 8601)"),
        ("Learning", B, False, "True while the line learns its limits on the device (no model)"),
        ("LearningState", S, "model", "waiting for good data | learning | learned | model"),
        ("LearningProgress", D, None, "Share of the learning period done, in percent"),
        ("LearningEtaS", D, None, "Seconds of good data still to learn (NaN while waiting)"),
    ):  # fmt: skip
        await build.variable(line, f"{base}/{name}", name, vtype, text, value)
    return line
