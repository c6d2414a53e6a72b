"""The agent: sources -> detection loop -> SCADA server and journal, in one task group.

Lifecycle (`Agent.run`): open the journal and start the OPC-UA server, then one root task group
runs every service (journal writer, OPC-UA publisher, one task per PLC connection, the
detection loop, status and heartbeat). READY=1 goes to systemd only once every PLC connection
has finished its first poll (good or bad) and the loop has processed a sample, or after
`READY_WAIT_S` with a warning naming the silent ones. STATUS= says the model version, each
PLC's state and the journal's. WATCHDOG=1 comes from the detection loop itself (see
`agent.ops.systemd.Watchdog`). Signals and reload are in `agent.runtime.daemon`.

Overflow policy of the sample queue: when the detection loop falls behind, the oldest sample
is dropped (the newest state of the line matters most) and counted in `sample_queue_drops`.

Counters: each service counts in its own stats and registers them once with the agent's
`CounterRegistry` (the loop's are `LoopStats`, as `loop`); the OPC-UA server reads them when
it publishes Agent/ (agent/sinks/scada/limits.py), so the hot path copies nothing.

Hooks for other services: add a task in `_services` and a line to `_shutdown`. The recorder
(`[record]`, agent/sinks/recorder.py) is one: fed in `_emit`, so it records every sample, also
those the detection loop drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.bundles.bundle import Bundle, load_bundle
from agent.config import SiteConfig
from agent.config.reload import ReloadPlan, plan_reload
from agent.ops.comms import CommsEdge
from agent.ops.counters import CounterRegistry
from agent.ops.logs import set_context
from agent.ops.systemd import (
    HEARTBEAT_NAME,
    Heartbeat,
    Watchdog,
    notify,
    runtime_dir,
    status_line,
)
from agent.pipeline.build import build_commissioning, build_monitor, candidate_channels
from agent.pipeline.commissioning import CommissioningLine
from agent.pipeline.line import LineMonitor, LineResult
from agent.runtime.alarm_restart import settle
from agent.runtime.commissioning import (
    FirstModelWatch,
    LearningReports,
    ModelArrived,
    learned_path,
    load_learned,
)
from agent.runtime.hotswap import ModelState, ModelUpdates, boot_check
from agent.runtime.snapshot_file import snapshot_path
from agent.runtime.snapshots import DetectorSnapshots, Owner
from agent.sinks.explainer import make_explainer
from agent.sinks.journal import Journal, Retention, open_alarm_edges
from agent.sinks.recorder import Recorder, recorded_tags
from agent.sinks.scada import ScadaServer
from agent.sources import make_source
from agent.types import Event, Quality, Sample

log = logging.getLogger(__name__)
SAMPLE_QUEUE_SIZE = 256
READY_WAIT_S = 10.0
STATUS_INTERVAL_S = 5.0
# Below the unit's TimeoutStopSec=20, so systemd never has to SIGKILL a draining agent.
DRAIN_TIMEOUT_S = 15.0
# Test-only hook: this many seconds after READY the detection loop hangs (awaits forever) while the
# rest of the event loop keeps running, to prove the watchdog pings stop.
STALL_ENV = "LINESIDE_DEBUG_STALL_AFTER_S"
# Test-only hook: the drain waits this long first, as if the disk or a PLC hung at shutdown.
DRAIN_DELAY_ENV = "LINESIDE_DEBUG_DRAIN_DELAY_S"
# Test-only hooks for crash tests: journal this many extra records per processed sample, and
# append the id of every record the journal has committed to this file.
BURST_ENV = "LINESIDE_DEBUG_JOURNAL_BURST"
COMMIT_LOG_ENV = "LINESIDE_DEBUG_COMMIT_LOG"


def retention(config: SiteConfig) -> Retention:
    """The journal's retention limits from the site config."""
    return Retention.of(config.journal_retention_days, config.journal_max_mb)


def _commit_logger(path: Path) -> Callable[[list[str]], None]:
    """The COMMIT_LOG_ENV hook: ids appended after their commit, one per line."""
    log_file = path.open("a", buffering=1, encoding="utf-8")  # open for the process lifetime

    def write(ids: list[str]) -> None:
        log_file.write("".join(f"{i}\n" for i in ids))

    return write


@dataclass
class LoopStats:
    """The detection loop's own counters (Agent/LoopLatencyMs, SamplesProcessed, ...)."""

    latency_ms: float = 0.0  # detection time of the last sample
    processed: int = 0
    queue_drops: int = 0  # samples dropped from the full sample queue


class Agent:
    """Everything the daemon runs for one site config."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.sources = [make_source(plc) for plc in config.plcs]
        self.registry = CounterRegistry()
        if config.bundle is None:
            self._init_commissioning(config)
        else:
            self._init_with_bundle(config, config.bundle)

    def _init_with_bundle(self, config: SiteConfig, bundle_path: Path) -> None:
        boot_check(bundle_path)  # an update that never passed probation goes back first
        bundle = load_bundle(bundle_path)
        self.monitor: LineMonitor | CommissioningLine = build_monitor(config, bundle)
        self.commissioning: CommissioningLine | None = None
        manifest = bundle.manifest
        self.model_version = str(manifest.model_version)
        self._init_io(
            config,
            manifest.channel_names,
            f"{manifest.model_version} ({manifest.label})",
            manifest.threshold,
        )
        # Hot swap + probation when model.bundle is a store's `current` link.
        assert isinstance(self.monitor, LineMonitor)
        self.updates: ModelUpdates | None = ModelUpdates(
            self.monitor,
            bundle,
            bundle_path,
            config.detection,
            on_change=self._model_changed,
            publish=self._publish_model,
        )
        self.explainer = make_explainer(config, bundle, self.scada, self.journal)
        if self.explainer is not None:
            self.listeners.append(self.explainer.observe)  # off the hot path: a bounded queue
        # The detector state of the last run, if it is safe to restore, and SCADA's alarm
        # conditions (they start inactive) opened again for the alarms it still holds.
        detection = config.detection
        self.snapshots: DetectorSnapshots | None = DetectorSnapshots(
            snapshot_path(config.journal_path.parent, config.line),
            detection.state_interval_s,
            detection.state_max_age_s,
            self.registry,
        )
        restored = self.snapshots.restore(self.monitor, self._owner())
        self._settle_alarms(config, self.monitor, restored)
        self.listeners.append(self.snapshots.observe)
        self._init_common(config)

    def _init_commissioning(self, config: SiteConfig) -> None:
        """No bundle: learn on the device (agent.pipeline.commissioning), watch for a model."""
        channels, skipped = candidate_channels(config)
        learned_file = learned_path(config.state_dir, config.line)
        learned = load_learned(learned_file, channels)
        self.commissioning = build_commissioning(config, learned)
        self.monitor = self.commissioning
        self.model_version = "none"
        self._init_io(
            config, channels, "none (commissioning: limits learnt on the device)", math.nan
        )
        self.updates = None
        self.explainer = None  # it explains a model's alarms; there is no model yet
        self.snapshots = None
        self._settle_alarms(config, self.commissioning.monitor, restored=False)
        self.first_model = FirstModelWatch(config.model_store)
        self.learning = LearningReports(self.scada, self.journal, learned_file)
        if skipped:
            log.info("not learnt from: %s", "; ".join(f"{k} ({v})" for k, v in skipped.items()))
        self._init_common(config)

    def _settle_alarms(
        self, config: SiteConfig, monitor: LineMonitor | None, restored: bool
    ) -> None:
        """The journal's open alarms against the restored detectors (agent.runtime.alarm_restart):
        adopted ones reopen SCADA's condition, the others are closed in the journal and SCADA."""
        try:
            journal_open = open_alarm_edges(config.journal_path, config.line)
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

    def _init_io(
        self, config: SiteConfig, channels: list[str], model_text: str, threshold: float
    ) -> None:
        """The loop's counters, the journal, the SCADA server, the sample queue, the recorder."""
        self.loop = LoopStats()
        self.registry.register("loop", self.loop)
        self.journal = Journal(
            config.journal_path,
            line=config.line,
            retention=retention(config),
            registry=self.registry,
        )
        self.journal.model_version = self.model_version
        self.scada = ScadaServer(
            config.opcua,
            config.line,
            tags=[t for plc in config.plcs for t in plc.tags],
            channels=channels,
            model_version=model_text,
            threshold=threshold,
            registry=self.registry,
            plcs=[source.status for source in self.sources],
        )
        for source in self.sources:  # a PLC down or back is an event, beside the line's own
            source.status.on_edge = self._on_comms
        self.samples: asyncio.Queue[Sample] = asyncio.Queue(maxsize=SAMPLE_QUEUE_SIZE)
        # `[record]`: every sample also into historian CSVs; a full disk is alarmed, not fatal.
        self.recorder = None if config.record is None else Recorder(
            config.record, config.line, recorded_tags(config), self._on_event, self.registry
        )  # fmt: skip
        self.listeners: list[Callable[[LineResult], None]] = []
        # An operator's Acknowledge in SCADA is journaled against the alarm it acknowledges,
        # so the explainer can later cite how a similar event was resolved.
        self.scada.on_acknowledge = self._record_ack

    def _init_common(self, config: SiteConfig) -> None:
        self.watchdog = Watchdog()
        self.heartbeat = Heartbeat(  # on tmpfs: a full state directory is not a dead agent
            runtime_dir(config.state_dir) / HEARTBEAT_NAME,
            extra=lambda: {
                "journal_ok": self.journal.stats.healthy,
                "journal_error": self.journal.stats.last_error,
                "state_dir": str(config.state_dir),
            },
        )
        # Source (`plc/device` or `plc`) -> "ok" or "bad (n tags)", from the latest sample.
        self.plc_states: dict[str, str] = {}
        self.ready = asyncio.Event()
        #: Set when a first bundle was installed for a line in commissioning mode: the daemon
        #: starts the agent again on it (agent.runtime.commissioning).
        self.model_arrived: Path | None = None
        self._stall_after = float(os.environ.get(STALL_ENV) or 0.0)
        self._stall_at: float | None = None
        self._burst = int(os.environ.get(BURST_ENV) or 0)
        if os.environ.get(COMMIT_LOG_ENV):
            self.journal.on_commit = _commit_logger(Path(os.environ[COMMIT_LOG_ENV]))

    @property
    def bundle(self) -> Bundle:
        """The bundle the line runs on now (a hot swap changes it)."""
        if self.updates is None:
            raise RuntimeError("the line runs in commissioning mode: no bundle")
        return self.updates.bundle

    def _model_changed(self, old: str, new: str, text: str, status: str) -> None:
        self.model_version = new  # STATUS= lines and journal rows name the running model
        self.journal.record_model_change(old, new, text, status=status)

    def _publish_model(self, state: ModelState) -> None:
        self.scada.publish_model(state.version_text, state.status, state.last_update)

    def _owner(self) -> Owner:
        """Who a snapshot belongs to: the line, its model (as hot swaps leave it), channels."""
        assert self.updates is not None
        state = self.updates.state
        return Owner(self.config.line, state.version, state.label, list(self.monitor.channels))

    def snapshot(self) -> dict[str, Any]:
        """The line's snapshot dict, taken on the loop between two samples."""
        snapshots = self.snapshots
        assert snapshots is not None and isinstance(self.monitor, LineMonitor)
        return snapshots.take(self.monitor, self._owner(), snapshots.open_alarms.values())

    @property
    def sample_queue_drops(self) -> int:
        """Samples dropped because the detection loop fell behind."""
        return self.loop.queue_drops

    def _processed(self) -> int:
        return self.loop.processed

    # --- the hot path --------------------------------------------------------------------

    def _emit(self, sample: Sample) -> None:
        bad = sum(r.quality is not Quality.GOOD for r in sample.readings.values())
        self.plc_states[sample.source] = f"bad ({bad} tags)" if bad else "ok"
        if self.recorder is not None:
            self.recorder.offer(sample)  # a deque append: never blocks
        if self.samples.full():
            self.samples.get_nowait()
            self.loop.queue_drops += 1
        self.samples.put_nowait(sample)

    async def _detect(self) -> None:
        loop = self.loop
        while True:
            try:
                async with asyncio.timeout(1.0):
                    sample = await self.samples.get()
            except TimeoutError:
                self._progress()  # idle but alive: no PLC answering is not a hung loop
                continue
            started = time.perf_counter()
            if self.updates is not None:
                self.updates.at_boundary()  # a model swap happens between two samples only
            result = self.monitor.process(sample)
            if self.commissioning is not None:
                self.learning.after(self.commissioning)
            for event in result.events:
                self._on_event(event)
            loop.latency_ms = (time.perf_counter() - started) * 1e3
            loop.processed += 1
            self.scada.offer(result, sample.readings.keys())  # only this source's tags
            for listener in self.listeners:
                listener(result)
            for _ in range(self._burst):
                self.journal.record_explanation("burst", "test record", "test-hook")
            self._progress()
            if self._stall_at is not None and time.monotonic() >= self._stall_at:
                log.warning("%s is set: the detection loop hangs now (test hook)", STALL_ENV)
                await asyncio.Event().wait()

    def _progress(self) -> None:
        self.watchdog.kick()
        self.heartbeat.beat()

    def _record_ack(self, alarm_id: str, user: str, note: str) -> None:
        self.journal.record_ack(alarm_id, user, note)

    def _on_event(self, event: Event) -> None:
        fields = {
            "EVENT_ID": event.event_id, "EVENT_KIND": event.kind.value,
            "EVENT_STATE": event.state.value, "DETECTOR": event.detector, "TAG": event.tag,
        }  # fmt: skip
        log.warning("%s", event.message, extra=fields)
        self.journal.send(event)

    def _on_comms(self, edge: CommsEdge) -> None:
        event = edge.event(self.config.line)
        self._on_event(event)
        self.scada.offer_event(event)

    # --- readiness and status ------------------------------------------------------------

    def status(self) -> str:
        """The STATUS= line: model, each PLC's state ("down (<error>)" if down), the journal's."""
        states = dict(self.plc_states)
        for source in self.sources:
            for link in source.status.down_links():
                states[link.source] = f"down ({link.last_error})"
        plcs = ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "no data yet"
        stats = self.journal.stats
        journal = "ok" if stats.healthy else f"NOT WRITING ({stats.last_error})"
        overload = self.scada.overload.reason
        tail = f"; {overload}" if overload else ""
        return status_line(f"model {self.model_version}; PLC {plcs}; journal {journal}{tail}")

    async def _announce_ready(self, ready: asyncio.Event | None) -> None:
        expected = {s.name for s in self.sources}
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            seen = {source.split("/")[0] for source in self.plc_states}
            if expected <= seen and self.loop.processed > 0:
                break
            await asyncio.sleep(0.05)
        else:
            silent = sorted(expected - {s.split("/")[0] for s in self.plc_states})
            log.warning("ready without a first poll from %s", ", ".join(silent) or "the loop")
        notify(f"READY=1\nSTATUS={self.status()}")
        if self.commissioning is not None:
            learning = self.config.learning
            log.warning(
                "agent ready: line %s has no model: commissioning mode, %s; %d PLC(s)",
                self.config.line,
                "running on the limits learnt before"
                if self.commissioning.learned is not None
                else f"learning for {learning.period_s:g} s of good data",
                len(self.sources),
            )
        else:
            log.info(
                "agent ready: line %s, model %s, %d PLC(s)",
                self.config.line,
                self.model_version,
                len(self.sources),
            )
        self.ready.set()
        if self._stall_after > 0:
            self._stall_at = time.monotonic() + self._stall_after
        if ready is not None:
            ready.set()

    async def _report_status(self) -> None:
        last = ""
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            text = self.status()
            if text != last:
                notify(f"STATUS={text}")
                last = text

    # --- lifecycle -----------------------------------------------------------------------

    def _services(self, tg: asyncio.TaskGroup) -> None:
        tg.create_task(self.journal.run(), name="journal")
        tg.create_task(self.scada.run(), name="opcua-publisher")
        for source in self.sources:
            tg.create_task(source.run(self._emit), name=f"plc:{source.name}")
        tg.create_task(self._detect(), name="detection")
        if self.updates is not None:
            tg.create_task(self.updates.run(), name="model-updates")
        else:
            tg.create_task(self.first_model.run(), name="first-model")
        if self.explainer is not None:
            tg.create_task(self.explainer.run(), name="explainer")
        tg.create_task(self._report_status(), name="status")
        tg.create_task(self.heartbeat.run(), name="heartbeat")
        if self.snapshots is not None:
            tg.create_task(self.snapshots.run(self.snapshot, self._processed), name="snapshots")
        if self.recorder is not None:
            tg.create_task(self.recorder.run(), name="recorder")

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Start every service, signal readiness, run until cancelled, then drain."""
        set_context(LINE=self.config.line, MODEL_VERSION=self.model_version)
        try:
            await self.journal.open()  # a failure is alarmed; detection runs without it
            await self.scada.start()
            try:
                async with asyncio.TaskGroup() as tg:
                    self._services(tg)
                    tg.create_task(self._announce_ready(ready), name="ready")
            except* ModelArrived as arrived:
                first = arrived.exceptions[0]
                assert isinstance(first, ModelArrived)
                self.model_arrived = first.bundle
        finally:
            notify("STOPPING=1")
            with contextlib.suppress(Exception):
                await asyncio.shield(self._drain())

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._shutdown()
        except TimeoutError:
            log.error("drain did not finish in %.0f s; exiting anyway", DRAIN_TIMEOUT_S)

    async def _shutdown(self) -> None:
        """Flush the journal, close PLC connections (their tasks are done) and the server."""
        delay = float(os.environ.get(DRAIN_DELAY_ENV) or 0.0)
        if delay > 0:
            log.warning("%s is set: the drain hangs for %g s (test hook)", DRAIN_DELAY_ENV, delay)
            await asyncio.sleep(delay)
        if self.snapshots is not None:
            await self.snapshots.aclose(self.snapshot, self._processed)
        if self.commissioning is not None:
            await self.learning.aclose()  # the learnt limits reach the disk first
        if self.explainer is not None:
            await self.explainer.aclose()
        if self.recorder is not None:
            await self.recorder.aclose()  # before the journal: its last alarm edge is journaled
        await self.journal.aclose()
        await self.scada.stop()
        self.heartbeat.remove()

    def reload(self, new: SiteConfig) -> ReloadPlan:
        """Apply a new site config's reloadable fields, or refuse it whole (agent.config.reload)."""
        plan = plan_reload(self.config, new)
        if plan.refused:
            log.error(
                "reload refused, running config kept: %s changed and need a restart "
                "(systemctl restart lineside)",
                ", ".join(plan.restart),
            )
            return plan
        self.monitor.retune(new.detection)
        self.journal.retention = retention(new)
        self.config = new
        log.info("reloaded %s: %s", new.path, ", ".join(plan.apply) or "nothing changed")
        return plan
