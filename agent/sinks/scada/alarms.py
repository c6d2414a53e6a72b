"""Anomaly, SPC and comms alarms as OPC-UA Alarms & Conditions (OPC 10000-9), as asyncua allows.

Per line there are two conditions, `Lines/<line>/Alarms/Anomaly` (type LinesideAnomalyAlarmType)
and `Lines/<line>/Alarms/Spc` (LinesideSpcAlarmType), and per PLC connection one,
`Plcs/<name>/Alarm` (LinesideCommsAlarmType, source node the PLC's folder), all subtypes of
OffNormalAlarmType. A PLC's condition is active while any device (unit) of it is down: the
first device's raise activates it, each further raise re-fires it with its own message, and it
clears with the last device that answers again.

Supported:
- an event on every transition (raised, cleared, acknowledged), emitted through the Server
  object, with EventId (the journal's `event_id` of the edge, so SCADA history and
  `lineside events` join on it; an acknowledgement's is `<event_id>:ack<n>`), ConditionId
  (`NodeId`), SourceNode (the line, or the signal that
  tripped it, or the PLC), Severity (700 anomaly, 600 comms, 500 SPC), Message, ActiveState,
  AckedState, Retain, Comment and ClientUserId;
- the condition instances' ActiveState/AckedState/Severity/Message/Retain variables mirror the
  last event, so a client that reads instead of subscribing sees the same;
- `Acknowledge(EventId, Comment)` (the standard AcknowledgeableConditionType method, called on
  the condition) for the `operator` role; a stale EventId, or any on a condition that never
  raised, gives BadEventIdUnknown, a second
  acknowledgement BadConditionBranchAlreadyAcked;
- `ConditionRefresh(SubscriptionId)`: asyncua re-sends every retained condition between
  RefreshStart and RefreshEnd events.

Not supported: Confirm, AddComment, Enable/Disable, shelving, suppression, branches (a new
raise while unacknowledged replaces the old state rather than opening a branch), and
ConditionRefresh2 for one monitored item (asyncua routes it to the same code path).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from asyncua import Node, Server, ua

from agent.sinks.scada.security import CURRENT_USER
from agent.types import Event, EventKind, EventState

audit = logging.getLogger("lineside.audit")
# Told of every accepted acknowledgement: (alarm event id, user, comment). Must not block.
AckListener = Callable[[str, str, str], None]
log = logging.getLogger(__name__)

TYPE_NAMES = {
    EventKind.ANOMALY: "LinesideAnomalyAlarmType",
    EventKind.SPC: "LinesideSpcAlarmType",
    EventKind.COMMS: "LinesideCommsAlarmType",
}
CONDITION_NAMES = {EventKind.ANOMALY: "Anomaly", EventKind.SPC: "Spc", EventKind.COMMS: "Comms"}
LINE_KINDS = (EventKind.ANOMALY, EventKind.SPC)  # the conditions every line has
SEVERITIES = {EventKind.ANOMALY: 700, EventKind.SPC: 500, EventKind.COMMS: 600}
_MIRRORED = ("ActiveState", "ActiveState/Id", "AckedState", "AckedState/Id", "Retain",
             "Severity", "Message", "Time", "Comment")  # fmt: skip


def _lt(value: str) -> ua.LocalizedText:
    return ua.LocalizedText(value)


async def create_alarm_types(server: Server, ns: int) -> dict[EventKind, Node]:
    """Our alarm condition types, subtypes of OffNormalAlarmType."""
    types = {}
    for kind, name in TYPE_NAMES.items():
        types[kind] = await server.create_custom_event_type(
            ua.NodeId(f"Types/{name}", ns), ua.QualifiedName(name, ns),
            ua.ObjectIds.OffNormalAlarmType,
        )  # fmt: skip
    return types


class Condition:
    """One alarm condition of a line (or of a PLC, `line` then being the PLC's name): its
    current state, its instance node, its generator."""

    def __init__(
        self,
        kind: EventKind,
        line: str,
        node: Node,
        generator: Any,
        on_ack: AckListener | None,
        subject: str = "",
    ) -> None:
        self.kind = kind
        self.line = line
        self.subject = subject or f"line {line}"  # what the condition's texts name
        self.node = node
        self.generator = generator
        self.on_ack = on_ack
        self.mirrors: dict[str, Node] = {}
        self.active = False
        self.acked = True
        self.acks = 0
        self.alarm_id = ""  # our Event.event_id of the last raise, which an ack refers to
        self.acks_of_raise = 0
        self.down: set[str] = set()  # a comms condition: the devices down now

    @property
    def event(self) -> Any:
        """The asyncua event object that carries this condition's state."""
        return self.generator.event

    async def setup(self, line_node: Node) -> None:
        """Fill the fixed event fields and find the instance variables to mirror."""
        ev = self.event
        ev.NodeId = self.node.nodeid
        ev.SourceNode = line_node.nodeid
        ev.SourceName = self.line
        ev.ConditionName = CONDITION_NAMES[self.kind]
        ev.BranchId = ua.NodeId()
        ev.EnabledState = _lt("Enabled")
        setattr(ev, "EnabledState/Id", True)
        ev.Quality = ua.StatusCode(ua.StatusCodes.Good)
        ev.Severity = SEVERITIES[self.kind]
        ev.Message = _lt(f"No {CONDITION_NAMES[self.kind].lower()} alarm on {self.subject}")
        self._set_states(active=False, acked=True)
        for path in _MIRRORED:
            try:
                self.mirrors[path] = await self.node.get_child([f"0:{p}" for p in path.split("/")])
            except ua.UaError:
                continue
        await self._mirror()

    def _set_states(self, active: bool, acked: bool) -> None:
        ev = self.event
        self.active, self.acked = active, acked
        ev.ActiveState = _lt("Active" if active else "Inactive")
        setattr(ev, "ActiveState/Id", active)
        ev.AckedState = _lt("Acknowledged" if acked else "Unacknowledged")
        setattr(ev, "AckedState/Id", acked)
        ev.Retain = active or not acked

    async def _mirror(self) -> None:
        for path, node in self.mirrors.items():
            value = getattr(self.event, path, None)
            if value is None:
                continue
            if path == "Severity":
                value = ua.Variant(int(value), ua.VariantType.UInt16)
            try:
                await node.write_value(value)
            except (ua.UaError, ValueError, TypeError):
                log.debug("cannot mirror %s of %s", path, self.node.nodeid)

    async def transition(self, event: Event, source: ua.NodeId | None) -> None:
        """Raise or clear the condition from an alarm edge of the detectors."""
        ev = self.event
        raised = event.state is EventState.RAISED
        if raised:
            self.alarm_id = event.event_id
        self._set_states(active=raised, acked=not raised and self.acked)
        ev.Severity = event.severity
        ev.Message = _lt(event.message)
        if source is not None:
            ev.SourceNode = source
        ev.SourceName = event.tag or self.line
        ev.Comment = _lt("")
        ev.ClientUserId = ""
        self.acks_of_raise = 0
        await self._fire(dt.datetime.fromtimestamp(event.ts, dt.UTC), event.event_id)

    async def _fire(self, when: dt.datetime, event_id: str) -> None:
        """Send the condition's event under `event_id` (the journal's, so that SCADA history
        and `lineside events` join on it). asyncua's `trigger` would draw a random EventId, so
        this does what it does with ours."""
        ev = self.event
        ev.EventId = ua.Variant(event_id.encode(), ua.VariantType.ByteString)
        ev.Time = when
        ev.ReceiveTime = dt.datetime.now(dt.UTC)
        local = ua.uaprotocol_auto.TimeZoneDataType()
        offset = when.astimezone().utcoffset()
        local.Offset = int(offset.total_seconds() // 60) if offset is not None else 0
        local.DaylightSavingInOffset = False
        ev.LocalTime = local
        await self.generator.isession.subscription_service.trigger_event(ev)
        await self._mirror()

    async def acknowledge(self, event_id: bytes | None, comment: str) -> ua.StatusCode:
        """The Acknowledge method: mark the current state acknowledged, with a comment."""
        user = CURRENT_USER.get()
        who = (user.name if user is not None else None) or "anonymous"
        current = getattr(self.event.EventId, "Value", None)  # None: the condition never fired
        known = current is not None and bool(self.alarm_id)
        if not known or not isinstance(event_id, bytes) or event_id != current:
            audit.warning(
                "acknowledge refused: %s on %s: stale or unknown EventId", who, self.node.nodeid
            )
            return ua.StatusCode(ua.StatusCodes.BadEventIdUnknown)
        if self.acked:
            audit.info("acknowledge refused: %s on %s: already acknowledged", who, self.node.nodeid)
            return ua.StatusCode(ua.StatusCodes.BadConditionBranchAlreadyAcked)
        self._set_states(active=self.active, acked=True)
        self.acks += 1
        ev = self.event
        ev.Comment = _lt(comment)
        ev.ClientUserId = who
        audit.warning(
            "acknowledged: %s alarm of %s by %s, comment %r",
            CONDITION_NAMES[self.kind], self.subject, who, comment,
        )  # fmt: skip
        if self.on_ack is not None:
            self.on_ack(self.alarm_id, who, comment)
        self.acks_of_raise += 1  # the ack's own event: the raise's id and its ack number
        await self._fire(dt.datetime.now(dt.UTC), f"{self.alarm_id}:ack{self.acks_of_raise}")
        return ua.StatusCode(ua.StatusCodes.Good)


class AlarmBook:
    """The conditions of one server, and the Acknowledge method that reaches them."""

    def __init__(self, server: Server, ns: int, on_ack: AckListener | None = None) -> None:
        self.server = server
        self.ns = ns
        self.on_ack = on_ack
        self.conditions: dict[ua.NodeId, Condition] = {}
        self.by_line: dict[tuple[str, EventKind], Condition] = {}
        self.by_plc: dict[str, Condition] = {}
        self._types: dict[EventKind, Node] = {}

    async def setup(self, line: str, line_node: Node) -> None:
        """Create the line's Alarms folder and its two conditions."""
        if not self._types:  # once per server; every line's conditions share the types
            self._types = await create_alarm_types(self.server, self.ns)
        types = self._types
        folder = await line_node.add_object(
            ua.NodeId(f"Lines/{line}/Alarms", self.ns), ua.QualifiedName("Alarms", self.ns)
        )
        await folder.write_attribute(
            ua.AttributeIds.Description,
            ua.DataValue(ua.Variant(_lt("Alarm conditions of the line (OPC UA A&C)"))),
        )
        for kind in LINE_KINDS:
            type_node, name = types[kind], CONDITION_NAMES[kind]
            node = await folder.add_object(
                ua.NodeId(f"Lines/{line}/Alarms/{name}", self.ns), ua.QualifiedName(name, self.ns),
                objecttype=type_node.nodeid, instantiate_optional=False,
            )  # fmt: skip
            generator = await self.server.get_event_generator(type_node, ua.ObjectIds.Server)
            condition = Condition(kind, line, node, generator, self.on_ack)
            await condition.setup(line_node)
            self.conditions[node.nodeid] = condition
            self.by_line[(line, kind)] = condition
        self.server.iserver.isession.add_method_callback(
            ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge), self._acknowledge
        )

    async def add_plc(self, plc: str, folder: Node) -> None:
        """Create the comms condition `Plcs/<plc>/Alarm` (after `setup`)."""
        type_node = self._types[EventKind.COMMS]
        node = await folder.add_object(
            ua.NodeId(f"Plcs/{plc}/Alarm", self.ns), ua.QualifiedName("Alarm", self.ns),
            objecttype=type_node.nodeid, instantiate_optional=False,
        )  # fmt: skip
        generator = await self.server.get_event_generator(type_node, ua.ObjectIds.Server)
        condition = Condition(EventKind.COMMS, plc, node, generator, self.on_ack, f"PLC {plc}")
        await condition.setup(folder)
        self.conditions[node.nodeid] = condition
        self.by_plc[plc] = condition

    async def _acknowledge(self, parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
        condition = self.conditions.get(parent)
        if condition is None:
            return ua.StatusCode(ua.StatusCodes.BadNodeIdInvalid)
        if len(args) != 2:
            return ua.StatusCode(ua.StatusCodes.BadArgumentsMissing)
        event_id = args[0].Value if isinstance(args[0], ua.Variant) else args[0]
        comment = args[1].Value if isinstance(args[1], ua.Variant) else args[1]
        text = comment.Text if isinstance(comment, ua.LocalizedText) else str(comment or "")
        return await condition.acknowledge(event_id, text or "")

    async def on_event(self, event: Event, source: ua.NodeId | None) -> None:
        """Turn an alarm edge into a condition transition."""
        if event.kind is EventKind.COMMS:
            await self._on_comms(event)
            return
        condition = self.by_line.get((event.line, event.kind))
        if condition is not None:
            await condition.transition(event, source)

    async def _on_comms(self, event: Event) -> None:
        """A device of a PLC down or back: the PLC's condition holds while any is down."""
        details = event.details
        condition = self.by_plc.get(str(details.get("plc", "")))
        if condition is None:
            return
        device = str(details.get("device", ""))
        if event.state is EventState.RAISED:
            condition.down.add(device)
        else:
            condition.down.discard(device)
            if condition.down:
                return  # another device of this PLC is still down
        await condition.transition(event, None)
