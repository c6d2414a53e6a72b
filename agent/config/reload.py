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

from agent.config.site import DetectionConfig, SiteConfig

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
}
# Nested fields whose table spells them otherwise (`[[plc.device]]`, `[[plc.device.tag]]`).
_NESTED_NAMES = {"devices": "device", "tags": "tag"}
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
    for f in dataclasses.fields(SiteConfig):
        if f.name in ("path", "detection"):
            continue
        if getattr(old, f.name) != getattr(new, f.name):
            name = _FILE_NAMES.get(f.name, f.name)
            if f.name in RELOADABLE_SITE:
                apply.append(name)
            else:
                restart.extend(
                    _capped(changed_fields(name, getattr(old, f.name), getattr(new, f.name)))
                )
    for f in dataclasses.fields(DetectionConfig):
        if getattr(old.detection, f.name) != getattr(new.detection, f.name):
            if f.name == "precision":
                restart.append("model.precision")
            elif f.name in RELOADABLE_DETECTION:
                apply.append(f"detection.{f.name}")
            else:
                restart.append(f"detection.{f.name}")
    return ReloadPlan(tuple(apply), tuple(restart))


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
