"""One line of the running agent: its pipeline and the services that belong to it alone.

A site has one line or several (`[[line]]`, agent/config/lines.py); the agent
(agent/runtime/app.py) owns what they share (the PLC sources, one OPC-UA server, one journal,
the recorder, heartbeat and status) and keeps one `LineRunner` per line. A runner holds the
line's `LineMonitor` (or `CommissioningLine`), its model updates (hot swap and probation),
detector snapshots, explainer, learnt limits and first-model watch, each on the line's own
files: `detector-state.<line>.json`, `learned-limits.<line>.json` and the line's model store.

It is built in two steps: `__init__` loads the model (or the learnt limits) so the agent can
tell the OPC-UA server what the line's folder holds; `attach` then wires it to the server and
the journal.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import Callable
from typing import Any

from agent.bundles.bundle import Bundle, load_bundle
from agent.config import DetectionConfig, SiteConfig
from agent.ops.counters import CounterRegistry
from agent.pipeline.build import build_commissioning, build_monitor, candidate_channels
from agent.pipeline.commissioning import CommissioningLine
from agent.pipeline.line import LineMonitor, LineResult
from agent.runtime.alarm_restart import settle
from agent.runtime.commissioning import (
    FirstModelWatch,
    LearningReports,
    learned_path,
    load_learned,
)
from agent.runtime.hotswap import ModelState, ModelUpdates, boot_check
from agent.runtime.snapshot_file import snapshot_path
from agent.runtime.snapshots import DetectorSnapshots, Owner
from agent.sinks.explainer import ExplainerSink, make_explainer
from agent.sinks.journal import Journal, open_alarm_edges
from agent.sinks.recorder import Recorder
from agent.sinks.scada import ScadaServer
from agent.sinks.web.board import LineBoard, refresh_limits
from agent.types import Event, Sample

log = logging.getLogger(__name__)


class LineRunner:
    """Everything the agent runs for one line; `config` is the line's view of the site."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.name = config.line
        #: The PLC connections whose samples are this line's (by `[[plc]] name`).
        self.plc_names = {plc.name for plc in config.plcs}
        self.listeners: list[Callable[[LineResult], None]] = []
        self.updates: ModelUpdates | None = None
        self.explainer: ExplainerSink | None = None
        self.snapshots: DetectorSnapshots | None = None
        self.first_model: FirstModelWatch | None = None
        self.learning: LearningReports | None = None
        #: `[web]`: the status page's board of this line (agent.runtime.status_page), if any.
        self.board: LineBoard | None = None
        self._bundle: Bundle | None = None
        self.judged = True  # the last result's: the detectors judged the line
        if config.bundle is None:
            channels, skipped = candidate_channels(config)
            self.learned_file = learned_path(config.state_dir, config.line)
            learned = load_learned(self.learned_file, channels)
            self.commissioning: CommissioningLine | None = build_commissioning(config, learned)
            self.monitor: LineMonitor | CommissioningLine = self.commissioning
            self.model_version = "none"
            self.model_text = "none (commissioning: limits learnt on the device)"
            self.threshold = math.nan
            self.channels = channels
            if skipped:
                log.info(
                    "line %s not learnt from: %s",
                    self.name,
                    "; ".join(f"{k} ({v})" for k, v in skipped.items()),
                )
        else:
            boot_check(config.bundle)  # an update that never passed probation goes back first
            self._bundle = load_bundle(config.bundle)
            self.commissioning = None
            self.monitor = build_monitor(config, self._bundle)
            manifest = self._bundle.manifest
            self.model_version = str(manifest.model_version)
            self.model_text = f"{manifest.model_version} ({manifest.label})"
            self.threshold = manifest.threshold
            self.channels = manifest.channel_names

    def attach(
        self,
        scada: ScadaServer,
        journal: Journal,
        registry: CounterRegistry,
        on_event: Callable[[Event], None],
    ) -> None:
        """Wire the line to the agent's server and journal: model updates, snapshots (the
        last run's state restored), explainer, the journal's open alarms settled."""
        self.scada, self.journal, self._on_event = scada, journal, on_event
        self._set_journal_model(self.model_version)
        config = self.config
        if self.commissioning is not None:
            self._settle_alarms(self.commissioning.monitor, restored=False)
            self.first_model = FirstModelWatch(config.model_store, line=self.name)
            self.learning = LearningReports(scada, journal, self.learned_file, line=self.name)
            return
        assert isinstance(self.monitor, LineMonitor) and self._bundle is not None
        assert config.bundle is not None
        # Hot swap + probation when model.bundle is a store's `current` link.
        self.updates = ModelUpdates(
            self.monitor,
            self._bundle,
            config.bundle,
            config.detection,
            on_change=self._model_changed,
            publish=self._publish_model,
        )
        self.explainer = make_explainer(config, self._bundle, scada, journal)
        if self.explainer is not None:
            self.listeners.append(self.explainer.observe)  # off the hot path: a bounded queue
        # The detector state of the last run, if it is safe to restore, and SCADA's alarm
        # conditions (they start inactive) opened again for the alarms it still holds.
        detection = config.detection
        self.snapshots = DetectorSnapshots(
            snapshot_path(config.state_dir, config.line),
            detection.state_interval_s,
            detection.state_max_age_s,
            registry,
        )
        restored = self.snapshots.restore(self.monitor, self._owner())
        self._settle_alarms(self.monitor, restored)
        self.listeners.append(self.snapshots.observe)

    def _settle_alarms(self, monitor: LineMonitor | None, restored: bool) -> None:
        """The journal's open alarms against the restored detectors (agent.runtime.alarm_restart):
        adopted ones reopen SCADA's condition, the others are closed in the journal and SCADA."""
        try:
            journal_open = open_alarm_edges(self.config.journal_path, self.name)
        except (sqlite3.Error, OSError) as exc:  # the journal writer will say what is wrong
            log.warning("open alarms not settled: the journal cannot be read: %s", exc)
            for event in self.snapshots.reopened if self.snapshots is not None else ():
                self.scada.offer_event(event)
            return
        settled = settle(monitor, journal_open, restored)
        if self.snapshots is not None:
            self.snapshots.open_alarms = {e.kind: e for e in settled.adopted}
        for event in settled.adopted:
            self.scada.offer_event(event)
        for event in settled.closed:
            self.journal.send(event)
            self.scada.offer_event(event)

    def _set_journal_model(self, version: str) -> None:
        if self.name == self.journal.line:
            self.journal.model_version = version
        else:
            self.journal.line_models[self.name] = version

    @property
    def bundle(self) -> Bundle:
        """The bundle the line runs on now (a hot swap changes it)."""
        if self.updates is None:
            raise RuntimeError(f"line {self.name} runs in commissioning mode: no bundle")
        return self.updates.bundle

    def _model_changed(self, old: str, new: str, text: str, status: str) -> None:
        self.model_version = new  # STATUS= lines and journal rows name the running model
        if self.board is not None and self.updates is not None:
            refresh_limits(self.board, self.updates.bundle.manifest)
        self.journal.record_model_change(old, new, text, line=self.name, status=status)

    def _publish_model(self, state: ModelState) -> None:
        self.scada.publish_model(state.version_text, state.status, state.last_update, self.name)

    def _owner(self) -> Owner:
        """Who a snapshot belongs to: the line, its model (as hot swaps leave it), channels."""
        assert self.updates is not None
        state = self.updates.state
        return Owner(self.name, state.version, state.label, list(self.monitor.channels))

    def snapshot(self) -> dict[str, Any]:
        """The line's snapshot dict, taken on the loop between two samples."""
        snapshots = self.snapshots
        assert snapshots is not None and isinstance(self.monitor, LineMonitor)
        return snapshots.take(self.monitor, self._owner(), snapshots.open_alarms.values())

    # --- the hot path --------------------------------------------------------------------

    def process(self, sample: Sample) -> LineResult:
        """One sample of this line's PLCs through its pipeline; the result to SCADA and the
        line's listeners, its alarm edges to `on_event`. Never blocks."""
        if self.updates is not None:
            self.updates.at_boundary()  # a model swap happens between two samples only
        result = self.monitor.process(sample)
        self.judged = result.judged
        if self.learning is not None and self.commissioning is not None:
            self.learning.after(self.commissioning)
        for event in result.events:
            self._on_event(event)
        self.scada.offer(result, self.name, sample.readings.keys())  # only this source's tags
        for listener in self.listeners:
            listener(result)
        return result

    def retune(self, detection: DetectionConfig) -> None:
        """Apply a reloaded `[detection]` of this line."""
        self.monitor.retune(detection)

    # --- lifecycle -----------------------------------------------------------------------

    def services(self, tg: asyncio.TaskGroup, processed: Callable[[], int]) -> None:
        """Start the line's own services in the agent's task group."""
        suffix = "" if self.name == self.journal.line else f":{self.name}"
        if self.updates is not None:
            tg.create_task(self.updates.run(), name=f"model-updates{suffix}")
        elif self.first_model is not None:
            tg.create_task(self.first_model.run(), name=f"first-model{suffix}")
        if self.explainer is not None:
            tg.create_task(self.explainer.run(), name=f"explainer{suffix}")
        if self.snapshots is not None:
            tg.create_task(self.snapshots.run(self.snapshot, processed), name=f"snapshots{suffix}")

    async def aclose(self, processed: Callable[[], int]) -> None:
        """Keep the line's state at shutdown: last snapshot, learnt limits; stop its explainer."""
        if self.snapshots is not None:
            await self.snapshots.aclose(self.snapshot, processed)
        if self.learning is not None:
            await self.learning.aclose()  # the learnt limits reach the disk first
        if self.explainer is not None:
            await self.explainer.aclose()

    def describe(self) -> str:
        """The line in the STATUS= line and the heartbeat: its model or its learning."""
        judged = "" if self.judged else ", not judged"
        if self.commissioning is None:
            return f"model {self.model_version}{judged}"
        status = self.commissioning.status()
        return f"commissioning ({status.state}, {100.0 * status.progress:.0f} %){judged}"


class FirstLine:
    """The first line's parts by their one-line names, for the agent (`Agent.monitor`, ...):
    a one-line site's agent is its line."""

    lines: list[LineRunner]
    recorders: dict[str, Recorder]

    @property
    def monitor(self) -> LineMonitor | CommissioningLine:
        """The first line's pipeline."""
        return self.lines[0].monitor

    @property
    def commissioning(self) -> CommissioningLine | None:
        """The first line's commissioning pipeline, if it has no model."""
        return self.lines[0].commissioning

    @property
    def updates(self) -> ModelUpdates | None:
        """The first line's model updates (None in commissioning mode)."""
        return self.lines[0].updates

    @property
    def snapshots(self) -> DetectorSnapshots | None:
        """The first line's detector snapshots."""
        return self.lines[0].snapshots

    @property
    def explainer(self) -> ExplainerSink | None:
        """The first line's explainer."""
        return self.lines[0].explainer

    @property
    def first_model(self) -> FirstModelWatch | None:
        """The first line's first-model watch (commissioning mode)."""
        return self.lines[0].first_model

    @property
    def listeners(self) -> list[Callable[[LineResult], None]]:
        """The first line's result listeners."""
        return self.lines[0].listeners

    @property
    def model_version(self) -> str:
        """The first line's running model version."""
        return self.lines[0].model_version

    @property
    def recorder(self) -> Recorder | None:
        """The first line's recorder (`[record]`)."""
        return self.recorders.get(self.lines[0].name)

    @property
    def bundle(self) -> Bundle:
        """The bundle the first line runs on now (a hot swap changes it)."""
        return self.lines[0].bundle

    def snapshot(self) -> dict[str, Any]:
        """The first line's snapshot dict, taken on the loop between two samples."""
        return self.lines[0].snapshot()
