"""What a SIGHUP may change in a running agent: the reload plan of two site configs.

Reloadable without a restart (the model stays loaded, the window, charts and alarm states
carry on):
    detection.raise_after, clear_after, clear_ratio, spc_hits, spc_span
    journal.retention_days, journal.max_mb
Everything else needs `systemctl restart lineside` (agent.runtime.daemon says which and why).
A refusal names the changed field down to the leaf, as the file spells it: `plc[0].port`,
`plc[1].device[0].unit`, `opcua.port`; a list that grew or shrank says so (`plc: 1 -> 2
entries`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.config.site import DetectionConfig, LineConfig, SiteConfig

RELOADABLE_DETECTION = ("raise_after", "clear_after", "clear_ratio", "spc_hits", "spc_span")
RELOADABLE_SITE = ("journal_retention_days", "journal_max_mb")
# Site fields as the config file spells them, for messages.
_FILE_NAMES = {
    "line": "line.name",
    "bundle": "model.bundle",
    "opcua": "opcua",
    "journal_path": "journal.path",
    "plcs": "plc",
    "journal_retention_days": "journal.retention_days",
    "journal_max_mb": "journal.max_mb",
    "lines": "line",
}
# In a `[[line]]` site these top-level fields repeat the first line's: `lines` covers them.
_FIRST_LINE_FIELDS = ("line", "bundle", "detection", "plcs", "explain", "learning", "store_root")
# Nested fields whose table spells them otherwise (`[[plc.device]]`, `[[plc.device.tag]]`).
_NESTED_NAMES = {"devices": "device", "tags": "tag", "plcs": "plc", "bundle": "model.bundle"}
# A refusal lists at most this many leaves of one top-level field, then a count.
MAX_LEAVES = 8


@dataclass(frozen=True)
class ReloadPlan:
    """What changed: the dotted fields applied now, and those that need a restart."""

    apply: tuple[str, ...]
    restart: tuple[str, ...]

    @property
    def refused(self) -> bool:
        """True when the new config cannot be applied without a restart."""
        return bool(self.restart)


def plan_reload(old: SiteConfig, new: SiteConfig) -> ReloadPlan:
    """Compare two site configs field by field."""
    apply: list[str] = []
    restart: list[str] = []
    several = bool(old.lines or new.lines)
    for f in dataclasses.fields(SiteConfig):
        if f.name in ("path", "detection") or (several and f.name in _FIRST_LINE_FIELDS):
            continue
        if f.name == "lines" and len(old.lines) == len(new.lines):
            for i, (a, b) in enumerate(zip(old.lines, new.lines, strict=True)):
                _plan_line(f"line[{i}]", a, b, apply, restart)
            continue
        if getattr(old, f.name) != getattr(new, f.name):
            name = _FILE_NAMES.get(f.name, f.name)
            if f.name in RELOADABLE_SITE:
                apply.append(name)
            else:
                restart.extend(
                    _capped(changed_fields(name, getattr(old, f.name), getattr(new, f.name)))
                )
    if not several:
        _plan_detection("", old.detection, new.detection, apply, restart)
    return ReloadPlan(tuple(apply), tuple(restart))


def _plan_line(
    name: str, old: LineConfig, new: LineConfig, apply: list[str], restart: list[str]
) -> None:
    """One `[[line]]` table: its detection as a one-line site's, everything else a restart."""
    for f in dataclasses.fields(LineConfig):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.name == "detection":
            _plan_detection(f"{name}.", a, b, apply, restart)
        elif a != b:
            sub = f"{name}.{_NESTED_NAMES.get(f.name, f.name)}"
            restart.extend(_capped(changed_fields(sub, a, b)))


def _plan_detection(
    prefix: str, old: DetectionConfig, new: DetectionConfig, apply: list[str], restart: list[str]
) -> None:
    for f in dataclasses.fields(DetectionConfig):
        if getattr(old, f.name) != getattr(new, f.name):
            if f.name == "precision":
                restart.append(f"{prefix}model.precision")
            elif f.name in RELOADABLE_DETECTION:
                apply.append(f"{prefix}detection.{f.name}")
            else:
                restart.append(f"{prefix}detection.{f.name}")


def changed_fields(name: str, old: Any, new: Any) -> list[str]:
    """The dotted paths under `name` where `old` and `new` differ, down to the leaves."""
    if old == new:
        return []
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        leaves: list[str] = []
        for f in dataclasses.fields(old):
            sub = f"{name}.{_NESTED_NAMES.get(f.name, f.name)}"
            leaves += changed_fields(sub, getattr(old, f.name), getattr(new, f.name))
        return leaves or [name]
    if isinstance(old, tuple | list) and isinstance(new, tuple | list):
        if len(old) != len(new):
            return [f"{name}: {len(old)} -> {len(new)} entries"]
        return [
            p
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for p in changed_fields(f"{name}[{i}]", a, b)
        ]
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = sorted({*old, *new}, key=str)
        return [p for k in keys for p in changed_fields(f"{name}.{k}", old.get(k), new.get(k))]
    return [name]


def _capped(leaves: list[str]) -> list[str]:
    if len(leaves) <= MAX_LEAVES:
        return leaves
    return [*leaves[:MAX_LEAVES], f"and {len(leaves) - MAX_LEAVES} more"]
