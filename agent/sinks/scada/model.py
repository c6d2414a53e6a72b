"""Building blocks of the address space: folders, plain variables, AnalogItems with units, and
the DataValue the server publishes.

Engineering units follow OPC 10000-8 5.6.3: EUInformation in the UNECE Rec. 20 namespace, with
UnitId computed from the UNECE common code. A unit without a well-known code (e.g. "g", which
a vibration sensor uses for acceleration, not grams) is published with UnitId -1 and its text.
EURange is the tag map's `range` when given, else what the register can hold after scaling.
"""

from __future__ import annotations

import math
from typing import Any

from asyncua import Node, ua

from agent.config import NodeTag, Tag
from agent.core.codec import DataType

UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
# tag-map unit text -> (UNECE common code, display name, description)
UNECE: dict[str, tuple[str, str, str]] = {
    "degC": ("CEL", "°C", "degree Celsius"),
    "K": ("KEL", "K", "kelvin"),
    "rpm": ("RPM", "r/min", "revolutions per minute"),
    "kg/h": ("KGH", "kg/h", "kilogram per hour"),
    "A": ("AMP", "A", "ampere"),
    "V": ("VLT", "V", "volt"),
    "W": ("WTT", "W", "watt"),
    "kW": ("KWT", "kW", "kilowatt"),
    "kWh": ("KWH", "kW·h", "kilowatt hour"),
    "Hz": ("HTZ", "Hz", "hertz"),
    "bar": ("BAR", "bar", "bar"),
    "kPa": ("KPA", "kPa", "kilopascal"),
    "Pa": ("PAL", "Pa", "pascal"),
    "mm/s": ("C16", "mm/s", "millimetre per second"),
    "m/min": ("2X", "m/min", "metre per minute"),
    "m3/h": ("MQH", "m³/h", "cubic metre per hour"),
    "%": ("P1", "%", "percent"),
    "s": ("SEC", "s", "second"),
    "ms": ("C26", "ms", "millisecond"),
    "N": ("NEW", "N", "newton"),
    "mm": ("MMT", "mm", "millimetre"),
    "m": ("MTR", "m", "metre"),
    "kg": ("KGM", "kg", "kilogram"),
    "l/min": ("L2", "l/min", "litre per minute"),
}
_RAW_LIMITS = {
    DataType.INT16: (-(2**15), 2**15 - 1), DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1), DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1), DataType.UINT64: (0, 2**64 - 1),
    DataType.FLOAT32: (-3.4028234663852886e38, 3.4028234663852886e38),
    DataType.FLOAT64: (-1.7976931348623157e308, 1.7976931348623157e308),
}  # fmt: skip


def unece_id(code: str) -> int:
    """UnitId of a UNECE common code (OPC 10000-8 5.6.3): its ASCII bytes, big-endian.

    >>> unece_id("CEL")
    4408652
    """
    value = 0
    for char in code.upper():
        value = value << 8 | ord(char)
    return value


def eu_information(unit: str) -> ua.EUInformation:
    """EngineeringUnits for a tag-map unit string."""
    info = ua.EUInformation()
    if unit in UNECE:
        code, shown, text = UNECE[unit]
        info.NamespaceUri, info.UnitId = UNECE_URI, unece_id(code)
        info.DisplayName, info.Description = ua.LocalizedText(shown), ua.LocalizedText(text)
    else:
        info.NamespaceUri, info.UnitId = "", -1
        info.DisplayName = ua.LocalizedText(unit)
        info.Description = ua.LocalizedText(unit or "no unit")
    return info


def eu_range(tag: Tag | NodeTag) -> ua.Range:
    """EURange: the tag map's `range` if it has one, else what the register can hold."""
    if tag.eu_range is not None:
        return ua.Range(Low=tag.eu_range[0], High=tag.eu_range[1])
    limits = _RAW_LIMITS.get(tag.dtype) if isinstance(tag, Tag) else None
    if limits is None:
        return ua.Range(Low=-math.inf, High=math.inf)
    ends = sorted(float(v) * tag.scaling.scale + tag.scaling.offset for v in limits)
    return ua.Range(Low=round(ends[0], 9), High=round(ends[1], 9))


def attrs_value(vtype: ua.VariantType) -> ua.Variant:
    """A blank value of a type, for a variable that has no reading yet."""
    blank: Any = {ua.VariantType.String: "", ua.VariantType.Boolean: False}.get(vtype, 0.0)
    if vtype.name.startswith(("Int", "UInt")):
        blank = 0
    if vtype is ua.VariantType.DateTime:
        blank = None
    return ua.Variant(blank, vtype)


class PublishedValue(ua.DataValue):
    """A DataValue that is never changed after it is written, so copying it is pointless.

    asyncua deep-copies every written DataValue once per monitored item (so that a later
    in-place change cannot leak into the queue); that copy was 60 % of publishing 2,000
    subscribed values. Ours are built fresh for each write and never mutated.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> PublishedValue:
        return self


def text(value: str) -> ua.DataValue:
    """A LocalizedText attribute value."""
    return ua.DataValue(ua.Variant(ua.LocalizedText(value), ua.VariantType.LocalizedText))


#: References of a parent beyond which its new children skip asyncua's duplicate scans.
WIDE_FOLDER = 16


class ModelBuilder:
    """Adds our nodes with string ids equal to their browse path below Objects.

    With `bulk`, nodes are only collected, in order (a parent before its children), and
    `flush` adds them all in one AddNodes call and sets the initial statuses in one Write:
    2,000 tags take a fraction of the time node by node takes."""

    def __init__(self, session: Any, ns: int, bulk: bool = False, aspace: Any = None) -> None:
        self.session = session
        self.ns = ns
        self.aspace = aspace  # the server's address space: lets `flush` add wide folders fast
        self.nodes: dict[str, ua.NodeId] = {}
        self._pending: list[ua.AddNodesItem] | None = [] if bulk else None
        self._waiting: list[ua.WriteValue] = []  # no reading yet: BadWaitingForInitialData

    async def _add(self, item: ua.AddNodesItem) -> Node:
        if self._pending is not None:
            self._pending.append(item)
            return Node(self.session, item.RequestedNewNodeId)
        (result,) = await self.session.add_nodes([item])
        result.StatusCode.check()
        return Node(self.session, result.AddedNodeId)

    async def _add_now(self, item: ua.AddNodesItem) -> None:
        """Add one node. Under a parent with many children (Signals: one per tag), asyncua
        scans every reference of the parent twice per new child (a duplicate check), which
        is quadratic: 2,000 tags took seconds. The new child's id is unique and it is not a
        property, so the checks run against the parent's first references only, and the
        reference asyncua adds to the parent is kept."""
        parent = self.aspace.get(item.ParentNodeId) if self.aspace is not None else None
        if parent is None or len(parent.references) <= WIDE_FOLDER:
            (result,) = await self.session.add_nodes([item])
            result.StatusCode.check()
            return
        every = parent.references
        parent.references = every[:WIDE_FOLDER]
        try:
            (result,) = await self.session.add_nodes([item])
        finally:
            every.extend(parent.references[WIDE_FOLDER:])
            parent.references = every
        result.StatusCode.check()

    async def _write(self, values: list[ua.WriteValue]) -> None:
        params = ua.WriteParameters()
        params.NodesToWrite = values
        for status in await self.session.write(params):
            status.check()

    async def flush(self) -> None:
        """Add every collected node, then mark those without a value as waiting for one."""
        if self._pending:
            items, self._pending = self._pending, []
            for item in items:
                await self._add_now(item)
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            await self._write(waiting)

    async def folder(self, parent: Node, path: str, name: str, description: str) -> Node:
        """An object (folder-like) node of BaseObjectType, organised under its parent.

        Added directly rather than through asyncua's instantiation, which browses every
        subtype of BaseObjectType for each new object (seconds per hundred objects)."""
        attrs = ua.ObjectAttributes()
        attrs.DisplayName = ua.LocalizedText(name)
        attrs.Description = ua.LocalizedText(description)
        attrs.EventNotifier = 0
        item = ua.AddNodesItem()
        item.RequestedNewNodeId = ua.NodeId(path, self.ns)
        item.BrowseName = ua.QualifiedName(name, self.ns)
        item.NodeClass = ua.NodeClass.Object
        item.ParentNodeId = parent.nodeid
        item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
        item.TypeDefinition = ua.NodeId(ua.ObjectIds.BaseObjectType)
        item.NodeAttributes = attrs
        return await self._add(item)

    def _attributes(
        self, name: str, description: str, vtype: ua.VariantType
    ) -> ua.VariableAttributes:
        attrs = ua.VariableAttributes()
        attrs.DisplayName = ua.LocalizedText(name)
        attrs.Description = ua.LocalizedText(description)
        attrs.Value = attrs_value(vtype)
        attrs.DataType = ua.NodeId(vtype.value)
        attrs.ValueRank = -1
        attrs.AccessLevel = attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
        return attrs

    async def variable(
        self,
        parent: Node,
        path: str,
        name: str,
        vtype: ua.VariantType,
        description: str,
        value: Any = None,
        type_definition: int = ua.ObjectIds.BaseDataVariableType,
    ) -> Node:
        """A read-only variable; without a value it reads BadWaitingForInitialData."""
        item = ua.AddNodesItem()
        item.RequestedNewNodeId = ua.NodeId(path, self.ns)
        item.BrowseName = ua.QualifiedName(name, self.ns)
        item.NodeClass = ua.NodeClass.Variable
        item.ParentNodeId = parent.nodeid
        item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
        item.TypeDefinition = ua.NodeId(type_definition)
        item.NodeAttributes = self._attributes(name, description, vtype)
        if value is not None:
            item.NodeAttributes.Value = ua.Variant(value, vtype)
        node = await self._add(item)
        self.nodes[path] = node.nodeid
        if value is None:  # no reading yet: say so instead of showing a made-up 0
            waiting = ua.WriteValue()
            waiting.NodeId, waiting.AttributeId = node.nodeid, ua.AttributeIds.Value
            status = ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
            waiting.Value = ua.DataValue(attrs_value(vtype), StatusCode=status)
            self._waiting.append(waiting)
            if self._pending is None:
                await self.flush()
        return node

    async def _property(self, parent: Node, path: str, name: str, value: ua.Variant,
                        datatype: int) -> None:  # fmt: skip
        """A read-only property (HasProperty, PropertyType), as asyncua's add_property makes."""
        attrs = ua.VariableAttributes()
        attrs.DisplayName = attrs.Description = ua.LocalizedText(name)
        attrs.DataType = ua.NodeId(datatype)
        attrs.Value = value
        attrs.ValueRank = ua.ValueRank.Scalar
        attrs.ArrayDimensions = None  # type: ignore[assignment]  # as asyncua sets a scalar
        attrs.WriteMask = attrs.UserWriteMask = 0
        attrs.Historizing = False
        attrs.AccessLevel = attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
        item = ua.AddNodesItem()
        item.RequestedNewNodeId = ua.NodeId(path, self.ns)
        item.BrowseName = ua.QualifiedName(name, 0)
        item.NodeClass = ua.NodeClass.Variable
        item.ParentNodeId = parent.nodeid
        item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty)
        item.TypeDefinition = ua.NodeId(ua.ObjectIds.PropertyType)
        item.NodeAttributes = attrs
        await self._add(item)

    async def analog(
        self, parent: Node, path: str, name: str, tag: Tag | NodeTag, description: str
    ) -> Node:
        """A Double AnalogItemType variable with EngineeringUnits and EURange properties."""
        node = await self.variable(
            parent, path, name, ua.VariantType.Double, description,
            type_definition=ua.ObjectIds.AnalogItemType,
        )  # fmt: skip
        ext = ua.VariantType.ExtensionObject
        await self._property(
            node,
            f"{path}/EngineeringUnits",
            "EngineeringUnits",
            ua.Variant(eu_information(tag.unit), ext),
            ua.ObjectIds.EUInformation,
        )
        await self._property(node, f"{path}/EURange", "EURange", ua.Variant(eu_range(tag), ext),
                             ua.ObjectIds.Range)  # fmt: skip
        return node
