"""SIGHUP: what a new site config may change in a running agent, and applying it.

Reloadable without a restart (the model stays loaded, the window, charts and alarm states
carry on):
    detection.raise_after, clear_after, clear_ratio, spc_hits, spc_span
    journal.retention_days, journal.max_mb
Everything else needs `systemctl restart lineside`: line.name, model.* (a new model comes
through a bundle swap, not a reload), detection.flatline_samples (the SPC charts count it),
opcua.*, journal.path and every [[plc]] (connections are opened at start).

A reload that fails to load, or that changes anything of the second list, is refused as a
whole and the running config stays; the log says why. Synchronous: the caller loads the new
config off the event loop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from agent.config import DetectionConfig, SiteConfig
from agent.events.alarms import SustainedRuleAlarm
from agent.monitor import LineMonitor

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


def apply_detection(monitor: LineMonitor, detection: DetectionConfig) -> None:
    """Retune a running monitor's alarm rules in place; active alarms stay active."""
    monitor.anomaly.raise_after = detection.raise_after
    monitor.anomaly.clear_after = detection.clear_after
    monitor.clear_ratio = detection.clear_ratio
    old = monitor.spc_alarm
    span = old._recent.shape[0]
    if span != detection.spc_span:
        # The rule window has a new length: start it empty, but keep the alarm's state.
        fresh = SustainedRuleAlarm(
            len(monitor.channels), detection.spc_hits, detection.spc_span, detection.clear_after
        )
        fresh.active = old.active
        monitor.spc_alarm = fresh
    else:
        old.hits = detection.spc_hits
        old.clear_after = detection.clear_after
