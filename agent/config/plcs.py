"""`[[plc]]` tables: PLC connections (Modbus TCP, RTU, RTU over TCP, OPC-UA) and their devices.

A `[[plc]]` table is one connection: a Modbus TCP endpoint, a serial port (Modbus RTU), a TCP
endpoint speaking RTU frames (serial device servers), or an OPC-UA server. Modbus connections
carry one or more `[[plc.device]]` tables (unit id, poll interval, tag map); a connection with
a single device may put `unit`, `poll_interval_s` and `tag_map` on the `[[plc]]` table itself.
Each table is checked on its own (`load_plc`); `check_connections` checks them together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from agent.config.reader import ErrorList, Section, field_names
from agent.config.tagmaps import (
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    NodeMap,
    NodeTag,
    Tag,
    TagMap,
    load_node_map,
    load_tag_map,
)
from agent.errors import ConfigError, ConfigErrors

MODBUS_PROTOCOLS = ("modbus-tcp", "modbus-rtu", "modbus-rtu-over-tcp")
PROTOCOLS = (*MODBUS_PROTOCOLS, "opcua")
SECURITY_POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
SECURITY_MODES = ("None", "Sign", "SignAndEncrypt")
T = TypeVar("T")
BAUD_RATES = (1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400)


@dataclass(frozen=True)
class SerialSettings:
    """A serial port for Modbus RTU, and the silent interval between frames on it."""

    port: str
    baudrate: int
    parity: str
    bytesize: int
    stopbits: int
    inter_frame_s: float

    @property
    def char_time_s(self) -> float:
        """Seconds per character on the wire: start + data + parity + stop bits."""
        bits = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return bits / self.baudrate


def default_inter_frame_s(baudrate: int, parity: str, bytesize: int, stopbits: int) -> float:
    """3.5 character times, or 1.75 ms above 19200 baud (Modbus over serial line, 2.5.1.1)."""
    if baudrate > 19200:
        return 0.00175
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return 3.5 * bits / baudrate


@dataclass(frozen=True)
class DeviceConfig:
    """One Modbus device (unit id) on a connection, with its own schedule and tag map."""

    name: str
    unit: int
    poll_interval_s: float
    tag_map: TagMap
    max_gap: int
    max_registers: int
    max_bits: int


@dataclass(frozen=True)
class OpcUaClientConfig:
    """How to read an OPC-UA server: subscription or polling, security, identity."""

    endpoint: str
    mode: str
    sampling_interval_s: float
    security_policy: str
    security_mode: str
    certificate: Path | None
    private_key: Path | None
    server_certificate: Path | None
    username: str | None
    password_file: Path | None
    node_map: NodeMap


@dataclass(frozen=True)
class PlcConfig:
    """One connection to the plant floor."""

    name: str
    protocol: str
    host: str
    port: int
    serial: SerialSettings | None
    timeout_s: float
    max_backoff_s: float
    poll_interval_s: float
    devices: tuple[DeviceConfig, ...]
    opcua: OpcUaClientConfig | None = None

    @property
    def tags(self) -> tuple[Tag | NodeTag, ...]:
        """Every tag this connection reads."""
        if self.opcua is not None:
            return self.opcua.node_map.tags
        return tuple(t for d in self.devices for t in d.tag_map.tags)


# A table's keys are its dataclass's field names, but where noted.
_DEVICE_KEYS = field_names(DeviceConfig)
_SERIAL_KEYS = field_names(SerialSettings)
#: A `[[plc]]`: its own fields (its devices listed as `[[plc.device]]`, its OPC-UA client's
#: fields on the table itself), and a single device's fields on the table too.
_PLC_KEYS = (
    (field_names(PlcConfig) - {"devices", "opcua"})
    | {"device"}
    | _DEVICE_KEYS
    | field_names(OpcUaClientConfig)
)


def _included(section: Section, key: str, base: Path, loader: Callable[[Path], T]) -> T:
    """Load a file named by `key`, reporting its errors under that field."""
    path = section.path_value(key, base)
    try:
        return loader(path)
    except ConfigError as exc:
        errors = [
            ConfigError(section.field(key), f"{e.field}: {e.problem}", e.fix, source=str(path))
            for e in exc.errors
        ]
        raise (errors[0] if len(errors) == 1 else ConfigErrors(errors)) from None


def _serial(p: Section) -> SerialSettings:
    s = p.table("serial", required=True)
    s.reject_unknown(_SERIAL_KEYS)
    baudrate = s.get("baudrate", int, 19200)
    if baudrate not in BAUD_RATES:
        raise s.error("baudrate", f"{baudrate} is not a standard rate", f"use one of {BAUD_RATES}")
    parity = s.choice("parity", ("N", "E", "O"), "E", fix="N (none), E (even) or O (odd)")
    bytesize = s.get("bytesize", int, 8)
    if bytesize not in (7, 8):
        raise s.error("bytesize", f"{bytesize} is not 7 or 8")
    stopbits = s.get("stopbits", int, 1 if parity != "N" else 2)
    if stopbits not in (1, 2):
        raise s.error("stopbits", f"{stopbits} is not 1 or 2")
    default_gap = default_inter_frame_s(baudrate, parity, bytesize, stopbits)
    inter_frame = s.positive("inter_frame_s", float, default_gap)
    if inter_frame < default_gap:
        raise s.error(
            "inter_frame_s",
            f"{inter_frame} s is shorter than 3.5 characters ({default_gap:.5f} s) at this speed",
            "the Modbus RTU spec requires at least 3.5 character times of silence",
        )
    return SerialSettings(
        port=s.get("port", str), baudrate=baudrate, parity=parity, bytesize=bytesize,
        stopbits=stopbits, inter_frame_s=inter_frame,
    )  # fmt: skip


def _device(
    d: Section, base: Path, parent_poll: float, timeout: float, protocol: str, listed: bool
) -> DeviceConfig:
    errors = ErrorList()
    if listed:
        errors.attempt(lambda: d.reject_unknown(_DEVICE_KEYS))
    tag_map = errors.attempt(lambda: _included(d, "tag_map", base, load_tag_map))
    device = errors.attempt(lambda: _device_fields(d, parent_poll, timeout, protocol, tag_map))
    return errors.result(device)


def _device_fields(
    d: Section, parent_poll: float, timeout: float, protocol: str, tag_map: TagMap | None
) -> DeviceConfig:
    poll = d.positive("poll_interval_s", float, parent_poll)
    if timeout >= poll:
        raise d.error(
            "poll_interval_s",
            f"{poll} s is not longer than the connection's timeout_s {timeout} s",
            "a read must time out before the next poll is due",
        )
    unit = d.within("unit", 0, 247, 1)
    if unit == 0 and protocol == "modbus-rtu":
        raise d.error("unit", "0 is the broadcast address on a serial bus: nobody answers a read")
    device = DeviceConfig(
        name=d.get("name", str, f"unit-{unit}"),
        unit=unit,
        poll_interval_s=poll,
        tag_map=tag_map or TagMap(Path(), "", "", ()),  # not read: its errors are reported
        max_gap=d.within("max_gap", 0, MAX_REGISTERS_PER_READ, 8),
        max_registers=d.within("max_registers", 1, MAX_REGISTERS_PER_READ, MAX_REGISTERS_PER_READ),
        max_bits=d.within("max_bits", 1, MAX_BITS_PER_READ, MAX_BITS_PER_READ),
    )
    for tag in device.tag_map.tags:
        limit = device.max_bits if tag.is_bit_table else device.max_registers
        if tag.span > limit:
            raise d.error(
                "tag_map",
                f"tag {tag.name} spans {tag.span} addresses, more than one read of this device "
                f"({limit})",
                "shorten the tag or raise max_registers (at most 125)",
            )
    return device


def _opcua_client(p: Section, base: Path) -> OpcUaClientConfig:
    policy = p.choice("security_policy", SECURITY_POLICIES, "None")
    mode = p.choice(
        "security_mode", SECURITY_MODES, "None" if policy == "None" else "SignAndEncrypt"
    )
    if (policy == "None") != (mode == "None"):
        raise p.error(
            "security_mode",
            f"security_mode {mode} does not fit security_policy {policy}",
            'use both "None", or a policy with Sign or SignAndEncrypt',
        )
    certificate = p.path_value("certificate", base) if p.has("certificate") else None
    private_key = p.path_value("private_key", base) if p.has("private_key") else None
    if policy != "None" and (certificate is None or private_key is None):
        raise p.error(
            "certificate", f"security_policy {policy} needs a client certificate and private_key"
        )
    for key, value in (("certificate", certificate), ("private_key", private_key)):
        if value is not None and not value.is_file():
            raise p.error(key, f"{value} does not exist")
    password_file = p.path_value("password_file", base) if p.has("password_file") else None
    if p.has("username") != (password_file is not None):
        raise p.error("username", "username and password_file go together")
    return OpcUaClientConfig(
        endpoint=p.get("endpoint", str),
        mode=p.choice("mode", ("subscription", "poll"), "subscription"),
        sampling_interval_s=p.positive("sampling_interval_s", float, 0.5),
        security_policy=policy,
        security_mode=mode,
        certificate=certificate,
        private_key=private_key,
        server_certificate=(
            p.path_value("server_certificate", base) if p.has("server_certificate") else None
        ),
        username=p.optional("username", str),
        password_file=password_file,
        node_map=_included(p, "node_map", base, load_node_map),
    )


def _schedule(p: Section) -> tuple[str, float, float]:
    """A connection's protocol, poll interval and timeout: what its devices are read against."""
    protocol = p.choice("protocol", PROTOCOLS, "modbus-tcp")
    poll = p.positive("poll_interval_s", float, 1.0)
    timeout = p.positive("timeout_s", float, min(1.0, poll / 2))
    if protocol == "opcua" and timeout >= poll:
        raise p.error("timeout_s", f"{timeout} s is not shorter than poll_interval_s {poll} s")
    return protocol, poll, timeout


def _endpoint(p: Section, protocol: str) -> tuple[str, int, SerialSettings | None]:
    """(host, port, serial settings) of a connection."""
    if protocol in ("modbus-tcp", "modbus-rtu-over-tcp"):
        return p.get("host", str), p.within("port", 1, 65535, 502), None
    if protocol == "modbus-rtu":
        return "", 0, _serial(p)
    return "", 0, None


def _devices(
    p: Section, base: Path, protocol: str, poll: float, timeout: float
) -> tuple[DeviceConfig, ...]:
    """The Modbus devices of a connection, each checked on its own."""
    if not p.has("device"):
        return (_device(p, base, poll, timeout, protocol, listed=False),)
    errors = ErrorList()
    for key in ("unit", "tag_map"):
        if p.has(key):
            errors.add(p.error(key, "belongs in each [[plc.device]] when devices are listed"))
    devices: list[DeviceConfig] = []
    units: dict[int, str] = {}
    for i, d in enumerate(p.tables("device")):
        try:
            device = _device(d, base, poll, timeout, protocol, listed=True)
        except ConfigError as exc:
            errors.add(exc)
            continue
        if device.unit in units:
            also = units[device.unit]
            errors.add(p.error(f"device[{i}].unit", f"unit {device.unit} is also {also}"))
        units[device.unit] = device.name
        devices.append(device)
    errors.raise_any()
    return tuple(devices)


def load_plc(p: Section, base: Path) -> PlcConfig:
    errors = ErrorList()
    errors.attempt(lambda: p.reject_unknown(_PLC_KEYS))
    # Nothing else can be read without the protocol and schedule: stop here if they are wrong.
    protocol, poll, timeout = errors.result(errors.attempt(lambda: _schedule(p)))
    endpoint = errors.attempt(lambda: _endpoint(p, protocol))
    name = errors.attempt(lambda: p.get("name", str))
    max_backoff = errors.attempt(lambda: p.positive("max_backoff_s", float, 10.0))
    opcua: OpcUaClientConfig | None = None
    devices: tuple[DeviceConfig, ...] = ()
    if protocol == "opcua":
        opcua = errors.attempt(lambda: _opcua_client(p, base))
    else:
        devices = errors.attempt(lambda: _devices(p, base, protocol, poll, timeout)) or ()
    host, port, serial = errors.result(endpoint)
    return PlcConfig(
        name=errors.result(name),
        protocol=protocol,
        host=host,
        port=port,
        serial=serial,
        timeout_s=timeout,
        max_backoff_s=errors.result(max_backoff),
        poll_interval_s=poll,
        devices=devices,
        opcua=opcua,
    )


def check_connections(plcs: tuple[PlcConfig, ...], path: Path, prefix: str = "") -> None:
    """Tag names unique across the line; one [[plc]] per serial port (`prefix`: the line's
    table, e.g. `line[1].`, in a site of several lines)."""
    errors = ErrorList()
    owners: dict[str, str] = {}
    serial_ports: dict[str, str] = {}
    for i, plc in enumerate(plcs):
        for tag in plc.tags:
            if tag.name in owners:
                errors.add(ConfigError(
                    f"{prefix}plc[{i}]", f"tag {tag.name!r} is also defined by {owners[tag.name]}",
                    "tag names must be unique across the line", source=str(path),
                ))  # fmt: skip
            owners[tag.name] = plc.name
        if plc.serial is not None:
            if plc.serial.port in serial_ports:
                errors.add(ConfigError(
                    f"{prefix}plc[{i}].serial.port",
                    f"{plc.serial.port} is also used by {serial_ports[plc.serial.port]}",
                    "list every slave of one bus as a [[plc.device]] of one [[plc]]",
                    source=str(path),
                ))  # fmt: skip
            serial_ports[plc.serial.port] = plc.name
    errors.raise_any()
