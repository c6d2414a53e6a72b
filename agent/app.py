"""The agent: sources -> detection loop -> SCADA server and journal, in one task group.

Lifecycle (`Agent.run`): open the journal and start the OPC-UA server, then one root task group
runs every service (journal writer, OPC-UA publisher, one task per PLC connection, the
detection loop, status and heartbeat). READY=1 goes to systemd only once every PLC connection
has finished its first poll (good or bad) and the loop has processed a sample, or after
`READY_WAIT_S` with a warning naming the silent ones. STATUS= says the model version, each
PLC's state and the journal's. WATCHDOG=1 comes from the detection loop itself (see
`agent.ops.systemd.Watchdog`). Signals and reload are in `agent.ops.daemon`.

Overflow policy of the sample queue: when the detection loop falls behind, the oldest sample
is dropped (the newest state of the line matters most) and counted in `sample_queue_drops`.

Hooks for other services: add a task in `_services` and a line to `_shutdown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from agent.config import SiteConfig
from agent.detectors.fusion import LEGACY_FUSION
from agent.detectors.shift import shift_detector, shift_fusion
from agent.detectors.spc import SpcDetector
from agent.detectors.vae import VaeDetector
from agent.monitor import LineMonitor, LineResult
from agent.ops.bundles import Bundle, load_bundle
from agent.ops.daemon import ReloadPlan, apply_detection, plan_reload
from agent.ops.hotswap import ModelUpdates, boot_check
from agent.ops.logs import set_context
from agent.ops.snapshots import close_snapshots, restored_snapshots, run_snapshots
from agent.ops.systemd import Heartbeat, Watchdog, notify, status_line
from agent.sinks.explainer import make_explainer
from agent.sinks.journal import Journal, Retention
from agent.sinks.opcua_server import ScadaServer
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


def clock_source(config: SiteConfig, channels: list[str]) -> str | None:
    """The source whose samples step detection: the one that reads the first model channel.

    With a single source every sample steps detection (None)."""
    sources = source_names(config)
    if len(set(sources.values())) <= 1:
        return None
    return sources.get(channels[0])


def source_names(config: SiteConfig) -> dict[str, str]:
    """Tag name -> the `source` its samples carry (`plc/device` for Modbus, `plc` for OPC-UA)."""
    names: dict[str, str] = {}
    for plc in config.plcs:
        if plc.opcua is not None:
            names.update({t.name: plc.name for t in plc.opcua.node_map.tags})
        for device in plc.devices:
            names.update({t.name: f"{plc.name}/{device.name}" for t in device.tag_map.tags})
    return names


def build_monitor(config: SiteConfig, bundle: Bundle) -> LineMonitor:
    """The detection pipeline for a line, exactly as the live loop and replay use it."""
    manifest = bundle.manifest
    return LineMonitor(
        line=config.line,
        channels=manifest.channel_names,
        window=manifest.window,
        hop=manifest.hop,
        vae=VaeDetector(bundle, precision=config.detection.precision),
        spc=SpcDetector.from_manifest(manifest.spc, config.detection.flatline_samples),
        detection=config.detection,
        clock=clock_source(config, manifest.channel_names),
        fusion=shift_fusion(config.detection.fusion or manifest.fusion or LEGACY_FUSION, manifest),
        smoothing=(
            config.detection.smoothing
            if config.detection.smoothing is not None
            else manifest.smoothing
        ),
        shift=shift_detector(manifest, config.detection),
    )


def retention(config: SiteConfig) -> Retention:
    """The journal's retention limits from the site config."""
    return Retention(config.journal_retention_days * 86400.0, int(config.journal_max_mb * 2**20))


def _commit_logger(path: Path) -> Callable[[list[str]], None]:
    """The COMMIT_LOG_ENV hook: ids appended after their commit, one per line."""
    log_file = path.open("a", buffering=1, encoding="utf-8")  # open for the process lifetime

    def write(ids: list[str]) -> None:
        log_file.write("".join(f"{i}\n" for i in ids))

    return write


class Agent:
    """Everything the daemon runs for one site config."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        boot_check(config.bundle)  # an update that never passed probation goes back first
        self.bundle = load_bundle(config.bundle)
        self.monitor = build_monitor(config, self.bundle)
        self.sources = [make_source(plc) for plc in config.plcs]
        manifest = self.bundle.manifest
        self.model_version = str(manifest.model_version)
        self.journal = Journal(config.journal_path, line=config.line, retention=retention(config))
        self.journal.model_version = self.model_version
        self.scada = ScadaServer(
            config.opcua,
            config.line,
            tags=[t for plc in config.plcs for t in plc.tags],
            channels=manifest.channel_names,
            model_version=f"{manifest.model_version} ({manifest.label})",
            threshold=manifest.threshold,
        )
        self.samples: asyncio.Queue[Sample] = asyncio.Queue(maxsize=SAMPLE_QUEUE_SIZE)
        self.sample_queue_drops = 0
        self.listeners: list[Callable[[LineResult], None]] = []
        # An operator's Acknowledge in SCADA is journaled against the alarm it acknowledges,
        # so the explainer can later cite how a similar event was resolved.
        self.scada.on_acknowledge = self._record_ack
        self.explainer = make_explainer(config, self.bundle, self.scada, self.journal)
        if self.explainer is not None:
            self.listeners.append(self.explainer.observe)  # off the hot path: a bounded queue
        self.updates = ModelUpdates(self)  # hot swap + probation when model.bundle is a store
        self.snapshots = restored_snapshots(self)  # the detector state of the last run, if safe
        self.watchdog = Watchdog()
        self.heartbeat = Heartbeat(
            config.journal_path.parent / "heartbeat.json",
            extra=lambda: {"journal_ok": self.journal.stats.healthy},
        )
        # Source (`plc/device` or `plc`) -> "ok" or "bad (n tags)", from the latest sample.
        self.plc_states: dict[str, str] = {}
        self.ready = asyncio.Event()
        self._stall_after = float(os.environ.get(STALL_ENV) or 0.0)
        self._stall_at: float | None = None
        self._burst = int(os.environ.get(BURST_ENV) or 0)
        if os.environ.get(COMMIT_LOG_ENV):
            self.journal.on_commit = _commit_logger(Path(os.environ[COMMIT_LOG_ENV]))

    # --- the hot path --------------------------------------------------------------------

    def _emit(self, sample: Sample) -> None:
        bad = sum(r.quality is not Quality.GOOD for r in sample.readings.values())
        self.plc_states[sample.source] = f"bad ({bad} tags)" if bad else "ok"
        if self.samples.full():
            self.samples.get_nowait()
            self.sample_queue_drops += 1
        self.samples.put_nowait(sample)

    async def _detect(self) -> None:
        counters = self.scada.counters
        while True:
            try:
                async with asyncio.timeout(1.0):
                    sample = await self.samples.get()
            except TimeoutError:
                self._progress()  # idle but alive: no PLC answering is not a hung loop
                continue
            started = time.perf_counter()
            self.updates.at_boundary()  # a model swap happens between two samples, never inside
            result = self.monitor.process(sample)
            for event in result.events:
                self._on_event(event)
            counters.loop_latency_ms = (time.perf_counter() - started) * 1e3
            counters.samples_processed += 1
            counters.sample_queue_drops = self.sample_queue_drops
            journal = self.journal.stats
            counters.journal_ok = journal.healthy
            counters.journal_write_errors = journal.write_errors
            counters.journal_dropped = journal.dropped
            if self.explainer is not None:
                explained = self.explainer.stats
                counters.explainer_queue_drops = explained.dropped
                counters.explanations_llm = explained.llm_accepted
                counters.explanations_template = explained.template_used
                counters.explainer_rejections = sum(explained.rejected.values())
                counters.explainer_worker_failures = (
                    explained.worker_crashes + explained.worker_timeouts
                )
            self.scada.offer(result)
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

    # --- readiness and status ------------------------------------------------------------

    def status(self) -> str:
        """The STATUS= line: model, each PLC's state, the journal's."""
        plcs = ", ".join(f"{k} {v}" for k, v in sorted(self.plc_states.items())) or "no data yet"
        stats = self.journal.stats
        journal = "ok" if stats.healthy else f"NOT WRITING ({stats.last_error})"
        return status_line(f"model {self.model_version}; PLC {plcs}; journal {journal}")

    async def _announce_ready(self, ready: asyncio.Event | None) -> None:
        expected = {s.name for s in self.sources}
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            seen = {source.split("/")[0] for source in self.plc_states}
            if expected <= seen and self.scada.counters.samples_processed > 0:
                break
            await asyncio.sleep(0.05)
        else:
            silent = sorted(expected - {s.split("/")[0] for s in self.plc_states})
            log.warning("ready without a first poll from %s", ", ".join(silent) or "the loop")
        notify(f"READY=1\nSTATUS={self.status()}")
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
        tg.create_task(self.updates.run(), name="model-updates")
        if self.explainer is not None:
            tg.create_task(self.explainer.run(), name="explainer")
        tg.create_task(self._report_status(), name="status")
        tg.create_task(self.heartbeat.run(), name="heartbeat")
        tg.create_task(run_snapshots(self), name="snapshots")

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Start every service, signal readiness, run until cancelled, then drain."""
        set_context(LINE=self.config.line, MODEL_VERSION=self.model_version)
        try:
            await self.journal.open()  # a failure is alarmed; detection runs without it
            await self.scada.start()
            async with asyncio.TaskGroup() as tg:
                self._services(tg)
                tg.create_task(self._announce_ready(ready), name="ready")
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
        await close_snapshots(self)
        if self.explainer is not None:
            await self.explainer.aclose()
        await self.journal.aclose()
        await self.scada.stop()
        self.heartbeat.remove()

    def reload(self, new: SiteConfig) -> ReloadPlan:
        """Apply a new site config's reloadable fields, or refuse it whole (see ops.daemon)."""
        plan = plan_reload(self.config, new)
        if plan.refused:
            log.error(
                "reload refused, running config kept: %s changed and need a restart "
                "(systemctl restart lineside)",
                ", ".join(plan.restart),
            )
            return plan
        apply_detection(self.monitor, new.detection)
        self.journal.retention = retention(new)
        self.config = new
        log.info("reloaded %s: %s", new.path, ", ".join(plan.apply) or "nothing changed")
        return plan
