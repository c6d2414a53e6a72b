"""What a SIGHUP may change in a running agent: the reload plan of two site configs.

Reloadable without a restart (the model stays loaded, the window, charts and alarm states
carry on):
    detection.raise_after, clear_after, clear_ratio, spc_hits, spc_span
    journal.retention_days, journal.max_mb
Everything else needs `systemctl restart lineside` (agent.runtime.daemon says which and why).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

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
            (apply if f.name in RELOADABLE_SITE else restart).append(name)
    for f in dataclasses.fields(DetectionConfig):
        if getattr(old.detection, f.name) != getattr(new.detection, f.name):
            if f.name == "precision":
                restart.append("model.precision")
            elif f.name in RELOADABLE_DETECTION:
                apply.append(f"detection.{f.name}")
            else:
                restart.append(f"detection.{f.name}")
    return ReloadPlan(tuple(apply), tuple(restart))
