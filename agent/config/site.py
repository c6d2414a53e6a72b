"""The site config: its lines, their PLC connections (agent/config/plcs.py), models, SCADA
server, journal, learning and recording.

A site is one line (`[line] name`, top-level `[model]`, `[[plc]]`, `[detection]`, ...) or
several (`[[line]]` tables, each with its own; agent/config/lines.py). Whoever runs or checks
a line takes its view (`SiteConfig.line_views`): a one-line `SiteConfig` of that line with the
site's server, journal and recording.

`load_config` reports every problem it finds in one `ConfigErrors`: each top-level section,
each `[[plc]]` and device, and each tag of a tag map is checked on its own.

`[model]` may be left out (`SiteConfig.bundle` is then None): the line runs in commissioning
mode, learning its limits on the device (`[learning]`, agent/config/learning.py). `[record]`
(agent/config/record.py) turns on the historian CSV recording of the running agent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from agent.bundles.manifest import FUSIONS
from agent.config.explain import ExplainConfig, load_explain
from agent.config.learning import LearningConfig, load_learning
from agent.config.lines import (
    check_line_name,
    check_plcs_across_lines,
    is_several_lines,
    line_store,
    refuse_mixed_forms,
)
from agent.config.opcua import OpcUaConfig, load_opcua
from agent.config.plcs import (
    BAUD_RATES,
    MODBUS_PROTOCOLS,
    PROTOCOLS,
    DeviceConfig,
    OpcUaClientConfig,
    PlcConfig,
    SerialSettings,
    check_connections,
    default_inter_frame_s,
    load_plc,
)
from agent.config.reader import ErrorList, Section, field_default, field_names, read_toml
from agent.config.record import RecordConfig, load_record
from agent.config.state import STATE_INTERVAL_S, STATE_MAX_AGE_S, load_state_settings
from agent.config.tagmaps import NodeTag, Tag
from agent.config.web import WebConfig, load_web
from agent.errors import ConfigError


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
class LineConfig:
    """One line of a `[[line]]` site: its PLCs, model (None: commissioning) and detectors."""

    name: str
    bundle: Path | None
    detection: DetectionConfig
    plcs: tuple[PlcConfig, ...]
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)


@dataclass(frozen=True)
class SiteConfig:
    """A whole site config: its line(s), PLCs, models, server and journal.

    A one-line site (and the view of one line) has its line in `line`, `bundle`, `detection`,
    `plcs`, `explain`, `learning` and `lines` empty. A `[[line]]` site lists them in `lines`;
    `plcs` is then every PLC of the site and the other line fields are the first line's."""

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
    #: The `[[line]]` tables of a site of that form; empty for a one-line site or a line's view.
    lines: tuple[LineConfig, ...] = ()
    #: The root of this line's model store when it is not the state directory ([[line]] form).
    store_root: Path | None = None
    web: WebConfig | None = None  # `[web]`: the local status page, if any (agent.sinks.web)

    @property
    def state_dir(self) -> Path:
        """Where the agent keeps its state: the journal's directory."""
        return self.journal_path.parent

    @property
    def model_store(self) -> Path:
        """The store a line in commissioning mode watches for its first bundle (the
        `--state-dir` of `lineside bundle install`, or `<it>/lines/<line>` with `--line`)."""
        return self.store_root or self.state_dir

    @property
    def line_names(self) -> list[str]:
        """The names of the site's lines, in file order."""
        return [line.name for line in self.lines] if self.lines else [self.line]

    def line_views(self) -> list[SiteConfig]:
        """One one-line config per line, each with the site's server, journal and recording."""
        if not self.lines:
            return [self]
        return [self.line_view(line.name) for line in self.lines]

    def with_bundle(self, name: str, bundle: Path | None) -> SiteConfig:
        """The site with line `name` running on `bundle` (its first model, installed)."""
        if not self.lines:
            return dataclasses.replace(self, bundle=bundle)
        lines = tuple(
            dataclasses.replace(ln, bundle=bundle) if ln.name == name else ln for ln in self.lines
        )
        first = lines[0]
        return dataclasses.replace(self, lines=lines, bundle=first.bundle)

    def line_view(self, name: str) -> SiteConfig:
        """The one-line config of line `name` (KeyError if the site has no such line)."""
        if not self.lines:
            if name != self.line:
                raise KeyError(name)
            return self
        line = next((ln for ln in self.lines if ln.name == name), None)
        if line is None:
            raise KeyError(name)
        return dataclasses.replace(
            self, line=line.name, bundle=line.bundle, detection=line.detection,
            plcs=line.plcs, explain=line.explain, learning=line.learning, lines=(),
            store_root=line_store(self.state_dir, line.name),
        )  # fmt: skip

    @property
    def tags(self) -> dict[str, Tag | NodeTag]:
        """Every tag of every connection, by name."""
        return {t.name: t for plc in self.plcs for t in plc.tags}


#: `[detection]`: DetectionConfig but `precision`, which is `[model] precision`.
_DETECTION_KEYS = field_names(DetectionConfig) - {"precision"}
#: `[journal]`: SiteConfig's `journal_*` fields without the prefix.
_JOURNAL_KEYS = {
    name.removeprefix("journal_") for name in field_names(SiteConfig) if name.startswith("journal_")
}


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
    known |= {"record", "web"}
    errors.attempt(lambda: root.reject_unknown(known))
    journal = errors.attempt(lambda: _journal(root, base))
    state_dir = journal[0].parent if journal is not None else base
    opcua = errors.attempt(
        lambda: load_opcua(root.table("opcua", required=False), base, state_dir=state_dir)
    )
    record = errors.attempt(
        lambda: load_record(root.table("record"), base, state_dir) if root.has("record") else None
    )
    web = errors.attempt(lambda: _web(root, opcua))
    if is_several_lines(root):
        errors.attempt(lambda: refuse_mixed_forms(root))
        lines = _lines(root, base, errors)
        first = lines[0] if lines else None
    else:
        name = errors.attempt(lambda: _line_name(root))
        first = _one_line(root, base, path, errors, name)
        lines = []
    journal_path, retention_days, max_mb = errors.result(journal)
    first = errors.result(first)
    return SiteConfig(
        path=path,
        line=first.name,
        bundle=first.bundle,  # None: commissioning mode
        detection=first.detection,
        opcua=errors.result(opcua),
        journal_path=journal_path,
        plcs=tuple(p for line in lines for p in line.plcs) if lines else first.plcs,
        journal_retention_days=retention_days,
        journal_max_mb=max_mb,
        explain=first.explain,
        learning=first.learning,
        record=record,
        lines=tuple(lines),
        web=web,
    )


def _one_line(
    root: Section, base: Path, path: Path, errors: ErrorList, name: str | None
) -> LineConfig | None:
    """A line's model, detection, PLCs, explainer and learning, from `root` (the file's top
    for the one-line form, a `[[line]]` table otherwise); None when an error was kept."""
    found_before = len(errors.errors)
    bundle = errors.attempt(lambda: _bundle(root, base))
    detection = errors.attempt(lambda: _detection(root))
    plcs: list[PlcConfig] = []
    plcs_before = len(errors.errors)
    for p in errors.attempt(lambda: root.tables("plc")) or []:
        try:
            plcs.append(load_plc(p, base))
        except ConfigError as exc:
            errors.add(exc)
    all_plcs = len(errors.errors) == plcs_before  # cross-checks only over the whole line
    prefix = f"{root.path}." if root.path else ""
    if all_plcs:
        errors.attempt(lambda: check_connections(tuple(plcs), path, prefix))
    explain = errors.attempt(lambda: load_explain(root.table("explain", required=False), base))
    learning = errors.attempt(lambda: load_learning(root.table("learning", required=False)))
    if explain is not None and all_plcs:
        tags = {t.name for plc in plcs for t in plc.tags}
        errors.attempt(lambda: _check_catalogue(explain, tags, path, prefix))
    if len(errors.errors) > found_before or name is None:
        return None
    assert detection is not None and explain is not None and learning is not None
    return LineConfig(name, bundle, detection, tuple(plcs), explain, learning)


def _lines(root: Section, base: Path, errors: ErrorList) -> list[LineConfig]:
    """Every `[[line]]` table, each checked on its own, then the PLCs across them."""
    seen: dict[str, str] = {}
    lines: list[LineConfig] = []
    read: list[tuple[Section, tuple[PlcConfig, ...]]] = []
    sections = errors.attempt(lambda: root.tables("line")) or []
    for section in sections:
        try:
            name: str | None = check_line_name(section, seen)
        except ConfigError as exc:
            errors.add(exc)
            name = None
        line = _one_line(section, base, Path(root.source), errors, name)
        if line is not None:
            lines.append(line)
            read.append((section, line.plcs))
    if len(lines) == len(sections):
        errors.attempt(lambda: check_plcs_across_lines(read))
    return lines


def _web(root: Section, opcua: OpcUaConfig | None) -> WebConfig | None:
    """`[web]`, which logs in with the OPC-UA users: without one, nobody could log in."""
    if not root.has("web"):
        return None
    section = root.table("web")
    config = load_web(section)
    if opcua is not None and not opcua.users:
        raise section.error(
            "web",
            "the status page logs in with the [[opcua.user]] users, and there are none",
            "add an [[opcua.user]] (lineside hash-password prints its hash), or remove [web]",
        )
    return config


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
    """Every symptom of each line's catalogue must name a tag of that line."""
    for view in config.line_views():
        _check_catalogue(view.explain, set(view.tags), view.path)


def _check_catalogue(explain: ExplainConfig, tags: set[str], site: Path, prefix: str = "") -> None:
    catalogue = explain.catalogue
    errors = ErrorList()
    for i, mode in enumerate(catalogue.modes):
        for j, symptom in enumerate(mode.symptoms):
            if symptom.tag not in tags:
                errors.add(ConfigError(
                    f"{prefix}explain.catalogue",
                    f"mode[{i}].symptoms[{j}].tag: {symptom.tag!r} is not a tag of the line",
                    "known: " + ", ".join(sorted(tags)),
                    source=str(catalogue.path or site),
                ))  # fmt: skip
    errors.raise_any()


__all__ = [
    "BAUD_RATES",
    "MODBUS_PROTOCOLS",
    "PROTOCOLS",
    "DetectionConfig",
    "DeviceConfig",
    "LineConfig",
    "OpcUaClientConfig",
    "PlcConfig",
    "SerialSettings",
    "SiteConfig",
    "check_catalogue_fits",
    "default_inter_frame_s",
    "load_config",
]
