"""The agent: sources -> detection loop -> SCADA server and journal, in one task group.

A site of several lines (`[[line]]`) runs them in one agent: one OPC-UA server, one journal,
one sample queue and detection loop, and per line a `LineRunner` (agent/runtime/line_runner.py:
its pipeline, model updates, snapshots, explainer, learnt limits) that each sample of the
line's PLCs goes to. The one-line attributes (`monitor`, `updates`, ...) are the first line's.

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
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.config import NodeTag, SiteConfig, Tag
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
from agent.runtime.commissioning import ModelArrived
from agent.runtime.line_runner import FirstLine, LineRunner
from agent.runtime.status_page import build_status_page
from agent.sinks.journal import Journal, Retention
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


class Agent(FirstLine):
    """Everything the daemon runs for one site config: its lines (`LineRunner`, one each, in
    agent/runtime/line_runner.py) and what they share."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.sources = [make_source(plc) for plc in config.plcs]
        self.registry = CounterRegistry()
        self.lines = [LineRunner(view) for view in config.line_views()]
        #: `[[plc]] name` -> the line its samples belong to.
        self._route = {plc: runner for runner in self.lines for plc in runner.plc_names}
        first = self.lines[0]
        self.loop = LoopStats()
        self.registry.register("loop", self.loop)
        self.journal = Journal(
            config.journal_path,
            line=first.name,
            retention=retention(config),
            registry=self.registry,
        )
        self.scada = ScadaServer(
            config.opcua,
            first.name,
            tags=_tags_of(first),
            channels=first.channels,
            model_version=first.model_text,
            threshold=first.threshold,
            registry=self.registry,
            plcs=[source.status for source in self.sources],
        )
        for runner in self.lines[1:]:
            self.scada.add_line(
                runner.name, _tags_of(runner), runner.channels, runner.model_text, runner.threshold
            )
        for source in self.sources:  # a PLC down or back is an event, beside the line's own
            source.status.on_edge = functools.partial(self._on_comms, self._route[source.name])
        self.samples: asyncio.Queue[Sample] = asyncio.Queue(maxsize=SAMPLE_QUEUE_SIZE)
        # `[record]`: every sample also into historian CSVs, one set per line; a full disk is
        # alarmed, not fatal.
        self.recorders: dict[str, Recorder] = {}
        if config.record is not None:
            for runner in self.lines:
                self.recorders[runner.name] = Recorder(
                    config.record, runner.name, recorded_tags(runner.config), self._on_event,
                    self.registry,
                )  # fmt: skip
        for runner in self.lines:
            runner.attach(self.scada, self.journal, self.registry, self._on_event)
        # An operator's Acknowledge in SCADA is journaled against the alarm it acknowledges,
        # so the explainer can later cite how a similar event was resolved.
        self.scada.on_acknowledge = self._record_ack
        # `[web]`: the status page reads boards each line's loop fills (never waits on it).
        self.board, self.web = build_status_page(config, self.lines, self.sources)
        self.watchdog = Watchdog()
        self.heartbeat = Heartbeat(  # on tmpfs: a full state directory is not a dead agent
            runtime_dir(config.state_dir) / HEARTBEAT_NAME,
            extra=lambda: {
                "journal_ok": self.journal.stats.healthy,
                "journal_error": self.journal.stats.last_error,
                "state_dir": str(config.state_dir),
                "lines": {runner.name: runner.describe() for runner in self.lines},
            },
        )
        # Source (`plc/device` or `plc`) -> "ok" or "bad (n tags)", from the latest sample.
        self.plc_states: dict[str, str] = {}
        self.ready = asyncio.Event()
        #: Set when a first bundle was installed for a line in commissioning mode: the daemon
        #: starts the agent again on it (agent.runtime.commissioning); `model_arrived_line`
        #: names the line.
        self.model_arrived: Path | None = None
        self.model_arrived_line = ""
        self._stall_after = float(os.environ.get(STALL_ENV) or 0.0)
        self._stall_at: float | None = None
        self._burst = int(os.environ.get(BURST_ENV) or 0)
        if os.environ.get(COMMIT_LOG_ENV):
            self.journal.on_commit = _commit_logger(Path(os.environ[COMMIT_LOG_ENV]))

    def line(self, name: str) -> LineRunner:
        """The runner of line `name`."""
        return next(runner for runner in self.lines if runner.name == name)

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
        if self.recorders:
            line = self._route[sample.source.split("/")[0]].name
            self.recorders[line].offer(sample)  # a deque append: never blocks
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
            self._route[sample.source.split("/")[0]].process(sample)
            loop.latency_ms = (time.perf_counter() - started) * 1e3
            loop.processed += 1
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

    def _on_comms(self, runner: LineRunner, edge: CommsEdge) -> None:
        event = edge.event(runner.name)
        self._on_event(event)
        self.scada.offer_event(event)
        if runner.board is not None:
            runner.board.on_event(event)

    # --- readiness and status ------------------------------------------------------------

    def status(self) -> str:
        """The STATUS= line: each line's model, each PLC's state ("down (<error>)" if down),
        the journal's."""
        states = dict(self.plc_states)
        for source in self.sources:
            for link in source.status.down_links():
                states[link.source] = f"down ({link.last_error})"
        plcs = ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "no data yet"
        stats = self.journal.stats
        journal = "ok" if stats.healthy else f"NOT WRITING ({stats.last_error})"
        if len(self.lines) == 1:
            models = self.lines[0].describe()
        else:
            models = "lines " + ", ".join(f"{r.name} {r.describe()}" for r in self.lines)
        overload = self.scada.overload.reason
        tail = f"; {overload}" if overload else ""
        return status_line(f"{models}; PLC {plcs}; journal {journal}{tail}")

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
        for runner in self.lines:
            if runner.commissioning is not None:
                log.warning(
                    "agent ready: line %s has no model: commissioning mode, %s; %d PLC(s)",
                    runner.name,
                    "running on the limits learnt before"
                    if runner.commissioning.learned is not None
                    else f"learning for {runner.config.learning.period_s:g} s of good data",
                    len(runner.plc_names),
                )
            else:
                log.info(
                    "agent ready: line %s, model %s, %d PLC(s)",
                    runner.name,
                    runner.model_version,
                    len(runner.plc_names),
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
        for runner in self.lines:
            runner.services(tg, self._processed)
        tg.create_task(self._report_status(), name="status")
        tg.create_task(self.heartbeat.run(), name="heartbeat")
        for line, recorder in self.recorders.items():
            tg.create_task(recorder.run(), name=f"recorder:{line}")
        if self.web is not None:
            tg.create_task(self.web.run(), name="web")

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Start every service, signal readiness, run until cancelled, then drain."""
        set_context(LINE=",".join(r.name for r in self.lines), MODEL_VERSION=self.model_version)
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
                self.model_arrived_line = first.line
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
        for runner in self.lines:
            await runner.aclose(self._processed)
        for recorder in self.recorders.values():
            await recorder.aclose()  # before the journal: its last alarm edge is journaled
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
        for runner, view in zip(self.lines, new.line_views(), strict=True):
            runner.retune(view.detection)
        self.journal.retention = retention(new)
        self.config = new
        log.info("reloaded %s: %s", new.path, ", ".join(plan.apply) or "nothing changed")
        return plan


def _tags_of(runner: LineRunner) -> list[Tag | NodeTag]:
    """Every tag a line's PLCs read, as the OPC-UA server lists them under Signals/."""
    return [t for plc in runner.config.plcs for t in plc.tags]
