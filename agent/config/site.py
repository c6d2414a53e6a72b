"""The site config: one line, its PLC connections and devices, model, SCADA server, journal.

A `[[plc]]` table is one connection: a Modbus TCP endpoint, a serial port (Modbus RTU), a TCP
endpoint speaking RTU frames (serial device servers), or an OPC-UA server. Modbus connections
carry one or more `[[plc.device]]` tables (unit id, poll interval, tag map); a connection with
a single device may put `unit`, `poll_interval_s` and `tag_map` on the `[[plc]]` table itself.

`load_config` reports every problem it finds in one `ConfigErrors`: each top-level section,
each `[[plc]]` and device, and each tag of a tag map is checked on its own.

`[model]` may be left out (`SiteConfig.bundle` is then None): the line runs in commissioning
mode, learning its limits on the device (`[learning]`, agent/config/learning.py). `[record]`
(agent/config/record.py) turns on the historian CSV recording of the running agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from agent.bundles.manifest import FUSIONS
from agent.config.explain import ExplainConfig, load_explain
from agent.config.learning import LearningConfig, load_learning
from agent.config.opcua import OpcUaConfig, load_opcua
from agent.config.reader import ErrorList, Section, field_default, field_names, read_toml
from agent.config.record import RecordConfig, load_record
from agent.config.state import STATE_INTERVAL_S, STATE_MAX_AGE_S, load_state_settings
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


@dataclass(frozen=True)
class DetectionConfig:
    """How detector outputs become alarms: debounce, hysteresis, SPC rule window.

    The defaults are the site config's for `[detection]` (and `[model] precision`)."""

    raise_after: int = 3
    clear_after: int = 10
    clear_ratio: float = 0.8
    spc_hits: int = 3
    spc_span: int = 5
    flatline_samples: int = 15
    precision: str = "int8"  # `[model] precision`
    #: How the VAE and SPC alarms fuse (agent.pipeline.events.fusion); None: the bundle's choice.
    fusion: str | None = None
    #: EWMA weight of the newest score before the threshold (1 = none); None: the bundle's.
    smoothing: float | None = None
    #: Seconds between snapshots of the detector state, and the oldest one restored at start.
    state_interval_s: float = STATE_INTERVAL_S
    state_max_age_s: float = STATE_MAX_AGE_S


@dataclass(frozen=True)
class SiteConfig:
    """A whole site config: one line, its PLCs, model, server and journal."""

    path: Path
    line: str
    #: The model bundle; None: no `[model] bundle`, the line runs in commissioning mode.
    bundle: Path | None
    detection: DetectionConfig
    opcua: OpcUaConfig
    journal_path: Path
    plcs: tuple[PlcConfig, ...]
    journal_retention_days: float = 90.0
    journal_max_mb: float = 512.0
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    record: RecordConfig | None = None  # `[record]`: the historian CSV recording, if any

    @property
    def state_dir(self) -> Path:
        """Where the agent keeps its state: the journal's directory."""
        return self.journal_path.parent

    @property
    def model_store(self) -> Path:
        """The store a line in commissioning mode watches for its first bundle (the
        `--state-dir` of `lineside bundle install`)."""
        return self.state_dir

    @property
    def tags(self) -> dict[str, Tag | NodeTag]:
        """Every tag of every connection, by name."""
        return {t.name: t for plc in self.plcs for t in plc.tags}


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
#: `[detection]`: DetectionConfig but `precision`, which is `[model] precision`.
_DETECTION_KEYS = field_names(DetectionConfig) - {"precision"}
#: `[journal]`: SiteConfig's `journal_*` fields without the prefix.
_JOURNAL_KEYS = {
    name.removeprefix("journal_") for name in field_names(SiteConfig) if name.startswith("journal_")
}


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


def _load_plc(p: Section, base: Path) -> PlcConfig:
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


def _detection(root: Section) -> DetectionConfig:
    """`[detection]`, and `[model] precision`, checked."""
    model = root.table("model", required=False)
    det = root.table("detection", required=False)
    det.reject_unknown(_DETECTION_KEYS)
    state_interval_s, state_max_age_s = load_state_settings(det)
    d = DetectionConfig()
    detection = DetectionConfig(
        raise_after=det.positive("raise_after", int, d.raise_after),
        clear_after=det.positive("clear_after", int, d.clear_after),
        clear_ratio=det.positive("clear_ratio", float, d.clear_ratio),
        spc_hits=det.positive("spc_hits", int, d.spc_hits),
        spc_span=det.positive("spc_span", int, d.spc_span),
        flatline_samples=det.get("flatline_samples", int, d.flatline_samples),
        precision=model.choice("precision", ("int8", "fp32"), d.precision),
        fusion=det.choice("fusion", FUSIONS) if "fusion" in det.raw else None,
        smoothing=det.optional("smoothing", float),
        state_interval_s=state_interval_s,
        state_max_age_s=state_max_age_s,
    )
    if detection.smoothing is not None and not 0.0 < detection.smoothing <= 1.0:
        raise det.error("smoothing", "must be in (0, 1]", "1 means no smoothing, e.g. 0.3")
    if detection.spc_hits > detection.spc_span:
        raise det.error("spc_hits", "cannot exceed spc_span", "e.g. spc_hits = 3, spc_span = 5")
    if detection.clear_ratio > 1.0:
        raise det.error("clear_ratio", "must be at most 1 (clear below the raise threshold)")
    return detection


def _journal(root: Section, base: Path) -> tuple[Path, float, float]:
    """`[journal]`: (path, retention_days, max_mb)."""
    journal = root.table("journal", required=False)
    journal.reject_unknown(_JOURNAL_KEYS)
    return (
        journal.path_value("path", base, "lineside-events.sqlite"),
        journal.positive(
            "retention_days", float, field_default(SiteConfig, "journal_retention_days")
        ),
        journal.positive("max_mb", float, field_default(SiteConfig, "journal_max_mb")),
    )


def _check_connections(plcs: tuple[PlcConfig, ...], path: Path) -> None:
    """Tag names unique across the line; one [[plc]] per serial port."""
    errors = ErrorList()
    owners: dict[str, str] = {}
    serial_ports: dict[str, str] = {}
    for i, plc in enumerate(plcs):
        for tag in plc.tags:
            if tag.name in owners:
                errors.add(ConfigError(
                    f"plc[{i}]", f"tag {tag.name!r} is also defined by {owners[tag.name]}",
                    "tag names must be unique across the line", source=str(path),
                ))  # fmt: skip
            owners[tag.name] = plc.name
        if plc.serial is not None:
            if plc.serial.port in serial_ports:
                errors.add(ConfigError(
                    f"plc[{i}].serial.port",
                    f"{plc.serial.port} is also used by {serial_ports[plc.serial.port]}",
                    "list every slave of one bus as a [[plc.device]] of one [[plc]]",
                    source=str(path),
                ))  # fmt: skip
            serial_ports[plc.serial.port] = plc.name
    errors.raise_any()


def load_config(path: Path) -> SiteConfig:
    """Read a site config and every file it names; raise ConfigError (ConfigErrors when there
    are several) naming every problem found.

    The model bundle it names is not opened here: `agent.bundles.checks.check_bundle_fits`
    does that."""
    path = path.resolve()
    base = path.parent
    root = read_toml(path)
    errors = ErrorList()
    known = {"line", "model", "detection", "opcua", "journal", "plc", "explain", "learning"}
    known |= {"record"}
    errors.attempt(lambda: root.reject_unknown(known))
    line = errors.attempt(lambda: _line_name(root))
    bundle = errors.attempt(lambda: _bundle(root, base))
    detection = errors.attempt(lambda: _detection(root))
    journal = errors.attempt(lambda: _journal(root, base))
    state_dir = journal[0].parent if journal is not None else base
    opcua = errors.attempt(
        lambda: load_opcua(root.table("opcua", required=False), base, state_dir=state_dir)
    )
    plcs: list[PlcConfig] = []
    found_before = len(errors.errors)
    for p in errors.attempt(lambda: root.tables("plc")) or []:
        try:
            plcs.append(_load_plc(p, base))
        except ConfigError as exc:
            errors.add(exc)
    all_plcs = len(errors.errors) == found_before  # cross-checks only over the whole line
    if all_plcs:
        errors.attempt(lambda: _check_connections(tuple(plcs), path))
    explain = errors.attempt(lambda: load_explain(root.table("explain", required=False), base))
    learning = errors.attempt(lambda: load_learning(root.table("learning", required=False)))
    record = errors.attempt(
        lambda: load_record(root.table("record"), base, state_dir) if root.has("record") else None
    )
    if explain is not None and all_plcs:
        tags = {t.name for plc in plcs for t in plc.tags}
        errors.attempt(lambda: _check_catalogue(explain, tags, path))
    journal_path, retention_days, max_mb = errors.result(journal)
    return SiteConfig(
        path=path,
        line=errors.result(line),
        bundle=bundle,  # None: commissioning mode (errors were raised just above)
        detection=errors.result(detection),
        opcua=errors.result(opcua),
        journal_path=journal_path,
        plcs=tuple(plcs),
        journal_retention_days=retention_days,
        journal_max_mb=max_mb,
        explain=errors.result(explain),
        learning=errors.result(learning),
        record=record,
    )


def _line_name(root: Section) -> str:
    line_table = root.table("line")
    line_table.reject_unknown({"name"})
    return line_table.get("name", str)


def _bundle(root: Section, base: Path) -> Path | None:
    # No [model] bundle: commissioning mode (agent.pipeline.commissioning) until one is installed.
    model = root.table("model", required=False)
    model.reject_unknown({"bundle", "precision"})
    return model.path_value("bundle", base) if model.has("bundle") else None


def check_catalogue_fits(config: SiteConfig) -> None:
    """Every symptom of the site's catalogue must name a tag of the line."""
    _check_catalogue(config.explain, set(config.tags), config.path)


def _check_catalogue(explain: ExplainConfig, tags: set[str], site: Path) -> None:
    catalogue = explain.catalogue
    errors = ErrorList()
    for i, mode in enumerate(catalogue.modes):
        for j, symptom in enumerate(mode.symptoms):
            if symptom.tag not in tags:
                errors.add(ConfigError(
                    "explain.catalogue",
                    f"mode[{i}].symptoms[{j}].tag: {symptom.tag!r} is not a tag of the line",
                    "known: " + ", ".join(sorted(tags)),
                    source=str(catalogue.path or site),
                ))  # fmt: skip
    errors.raise_any()
