"""PLC tag maps (Modbus registers) and OPC-UA node maps, read from TOML and validated.

A Modbus tag map may set `address_style` at its top ("protocol", the default: 0-based protocol
addresses; "modicon": 40001-style datasheet references; "one-based"; see agent.config.addresses)
and lists `[[tag]]` tables:

    name         plain identifier, unique on the line
    table        holding (default) | input | coil | discrete (a Modicon reference implies it)
    address      0-based protocol address (register 40001 in a manual is address 0), or as the
                 map's address_style says; 10001..19999 and 30001..49999 are refused unless
                 the map sets its address_style
    type         int16 uint16 int32 uint32 int64 uint64 float32 float64 bool string
    order        byte/word layout: AB BA | ABCD CDAB BADC DCBA | ABCDEFGH GHEFCDAB ...
    bit          for `bool` in a holding/input register: which bit, 0 = least significant
    length       for `string`: bytes (two per register)
    scale/offset engineering = raw * scale + offset
    unit         engineering unit, e.g. "degC"
    description  what the tag is, in plant words
    lsl/usl      optional spec limits in engineering units, for capability (Cp, Cpk, ...)
    target       optional nominal value inside the spec limits (for Cpm)
    range        [low, high] the instrument's span in engineering units (SCADA EURange)
    role         process (default) | setpoint | status | counter: what the tag is to the line
    detect       true | false: whether models and SPC charts may use the tag

An OPC-UA node map lists `[[tag]]` tables with `name`, `node_id`, optional `unit`,
`description`, `scale`, `offset`, `deadband` (absolute, in engineering units), `range` and the
same optional `lsl`, `usl`, `target`, `role` and `detect`.

Every tag is checked on its own, so one load reports the problems of all of them at once
(`ConfigErrors`).
`role` and `detect` keep a tag out of detection while it is still read, published and recorded:
an operator's setpoint, a status word or a cycle counter breaks SPC rules and models on normal
operation (a setpoint that never moves trips the flatline rule forever). Any role but `process`
implies `detect = false`; `detect = true` set explicitly keeps such a tag in detection anyway
(a setpoint that should be charted). `detect = false` on a process tag takes it out too.
`lineside-export train --tag-map` leaves such tags out of the model, and a bundle that models
one is refused by `check-config` and `bundle install`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent.config.addresses import address_style, tag_location
from agent.config.reader import ErrorList, Section, field_default, read_toml
from agent.core.codec import DataType, Layout, Scaling, string_registers
from agent.core.spc.capability import spec_problem
from agent.errors import ConfigError

REGISTER_TABLES = ("holding", "input")
BIT_TABLES = ("coil", "discrete")
MAX_REGISTERS_PER_READ = 125  # Modbus spec: read holding/input registers, 0x7D
MAX_BITS_PER_READ = 2000  # Modbus spec: read coils/discrete inputs, 0x7D0
MAX_STRING_LENGTH = 2 * MAX_REGISTERS_PER_READ
#: What a tag is to the line; only a process tag is in detection unless `detect` says otherwise.
ROLES = ("process", "setpoint", "status", "counter")
PROCESS_ROLE = "process"

_TAG_KEYS = {
    "name", "table", "address", "type", "order", "bit", "length",
    "scale", "offset", "unit", "description", "lsl", "usl", "target", "range",
    "role", "detect",
}  # fmt: skip
_NODE_KEYS = {
    "name", "node_id", "unit", "description", "scale", "offset", "deadband",
    "lsl", "usl", "target", "range", "role", "detect",
}  # fmt: skip
# The string form of an ExpandedNodeId (OPC 10000-6, 5.3.1.10), without a server index.
NODE_ID = re.compile(
    r"(?:(?:ns=\d+|nsu=[^;]+);)?"
    r"(?:i=\d+|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"|b=[A-Za-z0-9+/]+={0,2})"
)


@dataclass(frozen=True)
class Tag:
    """One Modbus item mapped to a named, typed, scaled engineering value."""

    name: str
    table: str
    address: int
    dtype: DataType
    layout: Layout
    scaling: Scaling
    unit: str
    description: str
    bit: int | None = None
    length: int = 0
    lsl: float | None = None
    usl: float | None = None
    target: float | None = None
    eu_range: tuple[float, float] | None = None
    role: str = PROCESS_ROLE
    detect: bool = True

    @property
    def is_bit_table(self) -> bool:
        """Coils and discrete inputs are addressed in bits, not registers."""
        return self.table in BIT_TABLES

    @property
    def span(self) -> int:
        """Consecutive addresses the tag occupies (bits for coil/discrete, else registers)."""
        if self.is_bit_table or self.dtype is DataType.BOOL:
            return 1
        if self.dtype is DataType.STRING:
            return string_registers(self.length)
        return self.dtype.registers

    @property
    def registers(self) -> int:
        """Register count (kept for callers that only deal with register tables)."""
        return self.span


@dataclass(frozen=True)
class NodeTag:
    """One OPC-UA variable of a PLC or SCADA server mapped to a named engineering value."""

    name: str
    node_id: str
    scaling: Scaling
    unit: str
    description: str
    deadband: float = 0.0
    lsl: float | None = None
    usl: float | None = None
    target: float | None = None
    eu_range: tuple[float, float] | None = None
    role: str = PROCESS_ROLE
    detect: bool = True


@dataclass(frozen=True)
class TagMap:
    """The register map of one PLC program or device."""

    path: Path
    vendor: str
    model: str
    tags: tuple[Tag, ...]
    address_style: str = "protocol"  # how the file wrote its addresses (agent.config.addresses)


@dataclass(frozen=True)
class NodeMap:
    """The node list of one OPC-UA server."""

    path: Path
    vendor: str
    tags: tuple[NodeTag, ...]


def _check_name(t: Section, seen: dict[str, str]) -> str:
    name = t.get("name", str)
    if not name.isidentifier():
        raise t.error("name", f"{name!r} is not a plain tag name", "use letters, digits and _")
    if name in seen:
        raise t.error("name", f"duplicate tag name {name!r} (also {seen[name]})")
    seen[name] = t.path
    return name


def _scaling(t: Section) -> Scaling:
    d = Scaling()
    scale = t.get("scale", float, d.scale)
    if scale == 0:
        raise t.error("scale", "must not be 0")
    return Scaling(scale=scale, offset=t.get("offset", float, d.offset))


def _spec(t: Section) -> tuple[float | None, float | None, float | None]:
    """Optional spec limits and target, checked together (finite, lsl < usl, target inside)."""
    lsl, usl, target = (t.optional(key, float) for key in ("lsl", "usl", "target"))
    if lsl is None and usl is None and target is None:
        return None, None, None
    found = spec_problem(lsl, usl, target)
    if found is not None:
        key, problem = found
        raise t.error(key, problem, "give finite engineering values, lsl <= target <= usl")
    return lsl, usl, target


def _eu_range(t: Section) -> tuple[float, float] | None:
    if not t.has("range"):
        return None
    value = t.get("range", list)
    fix = "write range = [low, high] in engineering units, e.g. [0.0, 250.0]"
    if len(value) != 2 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise t.error("range", f"{value!r} is not two numbers", fix)
    low, high = float(value[0]), float(value[1])
    if not low < high:
        raise t.error("range", f"low {low:g} is not below high {high:g}", fix)
    return (low, high)


def _detection(t: Section) -> tuple[str, bool]:
    """The tag's role and whether detection uses it: a non-process role implies false."""
    role = t.choice(
        "role", ROLES, PROCESS_ROLE,
        "process for a measured signal; setpoint, status or counter keep the tag out of detection",
    )  # fmt: skip
    return role, t.get("detect", bool, role == PROCESS_ROLE, "write detect = true or false")


def _modbus_tag(t: Section, seen: dict[str, str], style: str, explicit: bool) -> Tag:
    t.reject_unknown(_TAG_KEYS)
    name = _check_name(t, seen)
    table, address = tag_location(t, REGISTER_TABLES + BIT_TABLES, style, explicit)
    default_type = "bool" if table in BIT_TABLES else None
    try:
        dtype = DataType.parse(t.get("type", str, default_type))
    except ValueError as exc:
        raise t.error("type", str(exc)) from None
    if table in BIT_TABLES and dtype is not DataType.BOOL:
        raise t.error(
            "type", f"a {table} holds one bit: its type is bool, not {dtype.name.lower()}"
        )
    bit: int | None = None
    if dtype is DataType.BOOL and table in REGISTER_TABLES:
        if not t.has("bit"):
            raise t.error("bit", f"a bool in a {table} register needs its bit (0..15)")
        bit = t.within("bit", 0, 15)
    elif t.has("bit"):
        raise t.error("bit", f"only a bool in a holding/input register has a bit ({dtype.name})")
    length = 0
    if dtype is DataType.STRING:
        length = t.within("length", 1, MAX_STRING_LENGTH)
    elif t.has("length"):
        raise t.error("length", "only a string has a length")
    try:
        layout = Layout.parse(t.get("order", str, Layout.default_name(dtype)), dtype)
    except ValueError as exc:
        raise t.error("order", str(exc)) from None
    if dtype is DataType.BOOL and t.has("order"):
        raise t.error("order", "a bool has no byte order")
    role, detect = _detection(t)
    lsl, usl, target = _spec(t)
    if dtype in (DataType.BOOL, DataType.STRING) and (lsl, usl, target) != (None, None, None):
        key = next(k for k in ("lsl", "usl", "target") if t.has(k))
        raise t.error(key, f"a {dtype.name.lower()} tag has no spec limits", "remove it")
    tag = Tag(
        name=name, table=table, address=address, dtype=dtype, layout=layout,
        scaling=_scaling(t), unit=t.get("unit", str, ""),
        description=t.get("description", str, ""), bit=bit, length=length,
        lsl=lsl, usl=usl, target=target,
        eu_range=_eu_range(t), role=role, detect=detect,
    )  # fmt: skip
    if address + tag.span - 1 > 0xFFFF:
        raise t.error(
            "address",
            f"{name} runs past address 65535 ({tag.span} addresses from {address})",
            "check the address against the register map",
        )
    return tag


def load_tag_map(path: Path) -> TagMap:
    """Read and validate a Modbus tag map (see firmware-configs/plc/)."""
    root = read_toml(path)
    style, explicit = address_style(root)
    errors = ErrorList()
    errors.attempt(lambda: root.reject_unknown({"device", "tag", "address_style"}))
    device = root.table("device", required=False)
    seen: dict[str, str] = {}
    # (table, address) -> owner; bits of one register may be shared by several bool tags
    used: dict[tuple[str, int], str] = {}
    bits: dict[tuple[str, int, int], str] = {}
    tags: list[Tag] = []
    for t in root.tables("tag"):
        try:
            tag = _modbus_tag(t, seen, style, explicit)
            _claim(t, tag, used, bits)
        except ConfigError as exc:
            errors.add(exc)
        else:
            tags.append(tag)
    vendor = errors.attempt(lambda: device.get("vendor", str, ""))
    model = errors.attempt(lambda: device.get("model", str, ""))
    errors.raise_any()
    return TagMap(
        path=path,
        vendor=vendor or "",
        model=model or "",
        tags=tuple(tags),
        address_style=style,
    )


def _claim(
    t: Section, tag: Tag, used: dict[tuple[str, int], str], bits: dict[tuple[str, int, int], str]
) -> None:
    """Mark the addresses (or the bit) a tag occupies; refuse an overlap with an earlier tag."""
    if tag.bit is not None:
        key = (tag.table, tag.address, tag.bit)
        if key in bits:
            raise t.error("bit", f"bit {tag.bit} of register {tag.address} is already {bits[key]}")
        bits[key] = tag.name
        return
    for offset in range(tag.span):
        slot = (tag.table, tag.address + offset)
        if slot in used:
            raise t.error(
                "address",
                f"{tag.table} {tag.address + offset} is already used by {used[slot]}",
                "check the register map: two tags overlap",
            )
    for offset in range(tag.span):
        used[(tag.table, tag.address + offset)] = tag.name


def load_node_map(path: Path) -> NodeMap:
    """Read and validate an OPC-UA node map (see firmware-configs/opcua/)."""
    root = read_toml(path)
    root.reject_unknown({"server", "tag"})
    server = root.table("server", required=False)
    seen: dict[str, str] = {}
    nodes: dict[str, str] = {}
    tags: list[NodeTag] = []
    errors = ErrorList()
    for t in root.tables("tag"):
        try:
            tags.append(_node_tag(t, seen, nodes))
        except ConfigError as exc:
            errors.add(exc)
    vendor = errors.attempt(lambda: server.get("vendor", str, ""))
    errors.raise_any()
    return NodeMap(path=path, vendor=vendor or "", tags=tuple(tags))


def _node_tag(t: Section, seen: dict[str, str], nodes: dict[str, str]) -> NodeTag:
    t.reject_unknown(_NODE_KEYS)
    name = _check_name(t, seen)
    node_id = t.get("node_id", str)
    if not NODE_ID.fullmatch(node_id):
        raise t.error(
            "node_id",
            f"{node_id!r} is not an OPC-UA node id",
            "write [ns=<index>;|nsu=<uri>;]<i=number|s=text|g=guid|b=base64>, "
            'e.g. "ns=2;s=Line1.Temp"',
        )
    if node_id in nodes:
        raise t.error("node_id", f"{node_id} is already mapped to {nodes[node_id]}")
    nodes[node_id] = name
    deadband = t.get("deadband", float, field_default(NodeTag, "deadband"))
    if deadband < 0:
        raise t.error("deadband", "must not be negative")
    lsl, usl, target = _spec(t)
    role, detect = _detection(t)
    return NodeTag(
        name=name,
        node_id=node_id,
        scaling=_scaling(t),
        unit=t.get("unit", str, ""),
        description=t.get("description", str, ""),
        deadband=deadband,
        lsl=lsl,
        usl=usl,
        target=target,
        eu_range=_eu_range(t),
        role=role,
        detect=detect,
    )
