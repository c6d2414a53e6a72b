"""Typed site config and PLC tag maps, read from TOML, validated at load time.

Every problem raises `ConfigError` with the dotted path of the field, what is wrong and how to
fix it, e.g. ``plc[0].tag_map: tag[3].type: unknown data type 'flaot32' (fix: ...)``.
Relative paths in a file are relative to that file's directory.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import BundleError, ConfigError
from agent.sources.codec import DataType, Layout, Scaling

T = TypeVar("T")
REGISTER_TABLES = ("holding", "input")
MAX_REGISTERS_PER_READ = 125


class _Section:
    """Typed access to one TOML table; every error names the full field path."""

    def __init__(self, raw: dict[str, Any], path: str, source: str) -> None:
        self.raw = raw
        self.path = path
        self.source = source

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str, fix: str = "") -> ConfigError:
        return ConfigError(self.field(key), problem, fix, source=self.source)

    def get(self, key: str, kind: type[T], default: T | None = None, fix: str = "") -> T:
        if key not in self.raw:
            if default is None:
                raise self.error(key, "is required", fix)
            return default
        value = self.raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.error(
                key, f"must be a {kind.__name__}, got {type(value).__name__} {value!r}", fix
            )
        return value

    def positive(self, key: str, kind: type[T], default: T | None = None) -> T:
        value = self.get(key, kind, default)
        if not value > 0:  # type: ignore[operator]
            raise self.error(key, f"must be greater than 0, got {value!r}")
        return value

    def table(self, key: str, required: bool = True) -> _Section:
        raw = self.raw.get(key)
        if raw is None and not required:
            return _Section({}, self.field(key), self.source)
        if not isinstance(raw, dict):
            raise self.error(key, "is missing or not a table", f"add a [{self.field(key)}] table")
        return _Section(raw, self.field(key), self.source)

    def tables(self, key: str) -> list[_Section]:
        raw = self.raw.get(key)
        if not isinstance(raw, list) or not raw or not all(isinstance(t, dict) for t in raw):
            raise self.error(key, "needs at least one entry", f"add one or more [[{key}]] tables")
        return [_Section(t, f"{self.field(key)}[{i}]", self.source) for i, t in enumerate(raw)]

    def choice(
        self, key: str, options: tuple[str, ...], default: str | None = None, fix: str = ""
    ) -> str:
        value = self.get(key, str, default, fix)
        if value not in options:
            raise self.error(key, f"{value!r} is not one of {', '.join(options)}", fix)
        return value

    def path_value(self, key: str, base: Path, default: str | None = None) -> Path:
        value = Path(self.get(key, str, default))
        return value if value.is_absolute() else (base / value)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("file", f"{path} does not exist", "check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"{path} is not valid TOML: {exc}", source=str(path)) from None


@dataclass(frozen=True)
class Tag:
    """One PLC register mapped to a named, typed, scaled engineering value."""

    name: str
    table: str
    address: int
    dtype: DataType
    layout: Layout
    scaling: Scaling
    unit: str
    description: str

    @property
    def registers(self) -> int:
        """Register count of this tag."""
        return self.dtype.registers


@dataclass(frozen=True)
class TagMap:
    """The register map of one PLC program."""

    path: Path
    vendor: str
    model: str
    tags: tuple[Tag, ...]


def load_tag_map(path: Path) -> TagMap:
    """Read and validate a tag map file (see firmware-configs/plc/)."""
    root = _Section(_read_toml(path), "", str(path))
    device = root.table("device", required=False)
    tags: list[Tag] = []
    seen: dict[str, str] = {}
    used: dict[tuple[str, int], str] = {}
    for t in root.tables("tag"):
        name = t.get("name", str)
        if not name.isidentifier():
            raise t.error("name", f"{name!r} is not a plain tag name", "use letters, digits, _")
        if name in seen:
            raise t.error("name", f"duplicate tag name {name!r} (also {seen[name]})")
        seen[name] = t.path
        try:
            dtype = DataType.parse(t.get("type", str))
        except ValueError as exc:
            raise t.error("type", str(exc)) from None
        try:
            layout = Layout.parse(t.get("order", str, Layout.default_name(dtype)), dtype)
        except ValueError as exc:
            raise t.error("order", str(exc)) from None
        table = t.choice("table", REGISTER_TABLES, "holding")
        address = t.get("address", int)
        if not 0 <= address <= 0xFFFF - dtype.registers + 1:
            raise t.error("address", f"{address} is outside the Modbus range 0..65535")
        for offset in range(dtype.registers):
            key = (table, address + offset)
            if key in used:
                raise t.error(
                    "address",
                    f"register {address + offset} is already used by {used[key]}",
                    "check the register map: two tags overlap",
                )
            used[key] = name
        scale = t.get("scale", float, 1.0)
        if scale == 0:
            raise t.error("scale", "must not be 0")
        tags.append(
            Tag(
                name=name,
                table=table,
                address=address,
                dtype=dtype,
                layout=layout,
                scaling=Scaling(scale=scale, offset=t.get("offset", float, 0.0)),
                unit=t.get("unit", str, ""),
                description=t.get("description", str, ""),
            )
        )
    return TagMap(
        path=path,
        vendor=device.get("vendor", str, ""),
        model=device.get("model", str, ""),
        tags=tuple(tags),
    )


@dataclass(frozen=True)
class PlcConfig:
    """One PLC connection: its protocol, address, schedule and tag map."""

    name: str
    protocol: str
    host: str
    port: int
    unit: int
    poll_interval_s: float
    timeout_s: float
    max_backoff_s: float
    tag_map: TagMap


@dataclass(frozen=True)
class DetectionConfig:
    """How detector outputs become alarms: debounce, hysteresis, SPC rule window."""

    raise_after: int
    clear_after: int
    clear_ratio: float
    spc_hits: int
    spc_span: int
    flatline_samples: int
    precision: str


@dataclass(frozen=True)
class OpcUaConfig:
    """The local OPC-UA server for SCADA."""

    endpoint: str
    namespace: str
    security: str
    allow_anonymous: bool


@dataclass(frozen=True)
class SiteConfig:
    """A whole site config: one line, its PLCs, model, server and journal."""

    path: Path
    line: str
    bundle: Path
    detection: DetectionConfig
    opcua: OpcUaConfig
    journal_path: Path
    plcs: tuple[PlcConfig, ...]

    @property
    def tags(self) -> dict[str, Tag]:
        """Every tag of every PLC, by name."""
        return {t.name: t for plc in self.plcs for t in plc.tag_map.tags}


def _load_plc(p: _Section, base: Path) -> PlcConfig:
    protocol = p.choice("protocol", ("modbus-tcp",), "modbus-tcp")
    port = p.get("port", int, 502)
    if not 0 < port < 65536:
        raise p.error("port", f"{port} is not a TCP port")
    unit = p.get("unit", int, 1)
    if not 0 <= unit <= 247:
        raise p.error("unit", f"{unit} is not a Modbus unit id (0..247)")
    poll = p.positive("poll_interval_s", float, 1.0)
    timeout = p.positive("timeout_s", float, min(1.0, poll / 2))
    if timeout >= poll:
        raise p.error(
            "timeout_s",
            f"{timeout} s is not shorter than poll_interval_s {poll} s",
            "a read must time out before the next poll is due",
        )
    tag_map_path = p.path_value("tag_map", base)
    try:
        tag_map = load_tag_map(tag_map_path)
    except ConfigError as exc:
        raise ConfigError(
            p.field("tag_map"), f"{exc.field}: {exc.problem}", exc.fix, source=str(tag_map_path)
        ) from None
    return PlcConfig(
        name=p.get("name", str),
        protocol=protocol,
        host=p.get("host", str),
        port=port,
        unit=unit,
        poll_interval_s=poll,
        timeout_s=timeout,
        max_backoff_s=p.positive("max_backoff_s", float, 10.0),
        tag_map=tag_map,
    )


def load_config(path: Path, *, check_bundle: bool = True) -> SiteConfig:
    """Read a site config and every file it names; raise ConfigError on the first problem."""
    path = path.resolve()
    base = path.parent
    root = _Section(_read_toml(path), "", str(path))
    line = root.table("line").get("name", str)
    model = root.table("model")
    det = root.table("detection", required=False)
    opcua = root.table("opcua", required=False)
    journal = root.table("journal", required=False)
    detection = DetectionConfig(
        raise_after=det.positive("raise_after", int, 3),
        clear_after=det.positive("clear_after", int, 10),
        clear_ratio=det.positive("clear_ratio", float, 0.8),
        spc_hits=det.positive("spc_hits", int, 3),
        spc_span=det.positive("spc_span", int, 5),
        flatline_samples=det.get("flatline_samples", int, 15),
        precision=model.choice("precision", ("int8", "fp32"), "int8"),
    )
    if detection.spc_hits > detection.spc_span:
        raise det.error("spc_hits", "cannot exceed spc_span", "e.g. spc_hits = 3, spc_span = 5")
    if detection.clear_ratio > 1.0:
        raise det.error("clear_ratio", "must be at most 1 (clear below the raise threshold)")
    plcs = tuple(_load_plc(p, base) for p in root.tables("plc"))
    names: dict[str, str] = {}
    for i, plc in enumerate(plcs):
        for tag in plc.tag_map.tags:
            if tag.name in names:
                raise ConfigError(
                    f"plc[{i}].tag_map",
                    f"tag {tag.name!r} is also defined by {names[tag.name]}",
                    "tag names must be unique across the line",
                    source=str(path),
                )
            names[tag.name] = plc.name
    config = SiteConfig(
        path=path,
        line=line,
        bundle=model.path_value("bundle", base),
        detection=detection,
        opcua=OpcUaConfig(
            endpoint=opcua.get("endpoint", str, "opc.tcp://0.0.0.0:4840/lineside/"),
            namespace=opcua.get("namespace", str, "urn:lineside"),
            security=opcua.choice(
                "security",
                ("none",),
                fix='this version serves only security = "none"; set it explicitly to accept '
                "an unencrypted, unauthenticated endpoint (signed and encrypted endpoints are "
                "planned)",
            ),
            allow_anonymous=opcua.get("allow_anonymous", bool, False),
        ),
        journal_path=journal.path_value("path", base, "lineside-events.sqlite"),
        plcs=plcs,
    )
    if not config.opcua.allow_anonymous:
        raise opcua.error(
            "allow_anonymous",
            "this version has no user accounts yet, so anonymous access is the only way in",
            "set allow_anonymous = true on a lab network (user accounts are planned)",
        )
    if check_bundle:
        check_bundle_fits(config, model)
    return config


def check_bundle_fits(config: SiteConfig, model: _Section | None = None) -> None:
    """The bundle must exist, verify, and find every model channel among the line's tags."""
    from agent.ops.bundles import load_bundle

    field = model.field("bundle") if model else "model.bundle"
    try:
        bundle = load_bundle(config.bundle)
    except BundleError as exc:
        raise ConfigError(
            field,
            str(exc),
            "point model.bundle at a bundle directory made by lineside-export",
            source=str(config.path),
        ) from None
    missing = [c for c in bundle.manifest.channel_names if c not in config.tags]
    if missing:
        raise ConfigError(
            field,
            f"model channels {missing} are not tags of any PLC of this line",
            "add them to a tag map or use a bundle trained on this line's tags",
            source=str(config.path),
        )
