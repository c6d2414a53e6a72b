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


class ModelBuilder:
    """Adds our nodes with string ids equal to their browse path below Objects."""

    def __init__(self, session: Any, ns: int) -> None:
        self.session = session
        self.ns = ns
        self.nodes: dict[str, ua.NodeId] = {}

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
        (result,) = await self.session.add_nodes([item])
        result.StatusCode.check()
        return Node(self.session, result.AddedNodeId)

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
        (result,) = await self.session.add_nodes([item])
        result.StatusCode.check()
        node = Node(self.session, result.AddedNodeId)
        self.nodes[path] = node.nodeid
        if value is not None:
            await node.write_value(ua.DataValue(ua.Variant(value, vtype)))
        else:  # no reading yet: say so instead of showing a made-up 0
            waiting = ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
            await node.write_attribute(
                ua.AttributeIds.Value, ua.DataValue(attrs_value(vtype), StatusCode=waiting)
            )
        return node

    async def analog(
        self, parent: Node, path: str, name: str, tag: Tag | NodeTag, description: str
    ) -> Node:
        """A Double AnalogItemType variable with EngineeringUnits and EURange properties."""
        node = await self.variable(
            parent, path, name, ua.VariantType.Double, description,
            type_definition=ua.ObjectIds.AnalogItemType,
        )  # fmt: skip
        await node.add_property(
            ua.NodeId(f"{path}/EngineeringUnits", self.ns), ua.QualifiedName("EngineeringUnits", 0),
            ua.Variant(eu_information(tag.unit), ua.VariantType.ExtensionObject),
            datatype=ua.ObjectIds.EUInformation,
        )  # fmt: skip
        await node.add_property(
            ua.NodeId(f"{path}/EURange", self.ns), ua.QualifiedName("EURange", 0),
            ua.Variant(eu_range(tag), ua.VariantType.ExtensionObject),
            datatype=ua.ObjectIds.Range,
        )  # fmt: skip
        return node
