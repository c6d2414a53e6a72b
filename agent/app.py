"""The agent: sources -> detection loop -> SCADA server and journal, in one task group.

Overflow policy of the sample queue: when the detection loop falls behind, the oldest sample
is dropped (the newest state of the line matters most) and counted in `sample_queue_drops`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from agent.config import SiteConfig
from agent.detectors.spc import SpcDetector
from agent.detectors.vae import VaeDetector
from agent.monitor import LineMonitor, LineResult
from agent.ops.bundles import Bundle, load_bundle
from agent.ops.systemd import Watchdog, notify
from agent.sinks.explainer import make_explainer
from agent.sinks.journal import Journal
from agent.sinks.opcua_server import ScadaServer
from agent.sources import make_source
from agent.types import Event, Sample

log = logging.getLogger(__name__)
SAMPLE_QUEUE_SIZE = 256


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
    )


class Agent:
    """Everything the daemon runs for one site config."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.bundle = load_bundle(config.bundle)
        self.monitor = build_monitor(config, self.bundle)
        self.sources = [make_source(plc) for plc in config.plcs]
        self.journal = Journal(config.journal_path)
        manifest = self.bundle.manifest
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
        self.explainer = make_explainer(config, self.bundle, self.scada, self.journal)
        if self.explainer is not None:
            self.listeners.append(self.explainer.observe)

    def _emit(self, sample: Sample) -> None:
        if self.samples.full():
            self.samples.get_nowait()
            self.sample_queue_drops += 1
        self.samples.put_nowait(sample)

    async def _detect(self) -> None:
        watchdog = Watchdog()
        counters = self.scada.counters
        while True:
            try:
                async with asyncio.timeout(1.0):
                    sample = await self.samples.get()
            except TimeoutError:
                watchdog.kick()  # idle but alive: no PLC answering is not a hung loop
                continue
            started = time.perf_counter()
            result = self.monitor.process(sample)
            for event in result.events:
                self._on_event(event)
            counters.loop_latency_ms = (time.perf_counter() - started) * 1e3
            counters.samples_processed += 1
            counters.sample_queue_drops = self.sample_queue_drops
            self.scada.offer(result)
            for listener in self.listeners:
                listener(result)
            watchdog.kick()

    def _on_event(self, event: Event) -> None:
        log.warning("%s", event.message)
        self.journal.send(event)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Start every service, signal readiness, run until cancelled, then drain."""
        try:
            await self.journal.open()
            await self.scada.start()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.journal.run(), name="journal")
                tg.create_task(self.scada.run(), name="opcua-publisher")
                for source in self.sources:
                    tg.create_task(source.run(self._emit), name=f"plc:{source.name}")
                tg.create_task(self._detect(), name="detection")
                if self.explainer is not None:
                    tg.create_task(self.explainer.run(), name="explainer")
                manifest = self.bundle.manifest
                notify(f"READY=1\nSTATUS=model {manifest.model_version}, line {self.config.line}")
                log.info(
                    "agent ready: line %s, model %s, %d PLC(s)",
                    self.config.line,
                    manifest.model_version,
                    len(self.sources),
                )
                if ready is not None:
                    ready.set()
        finally:
            notify("STOPPING=1")
            with contextlib.suppress(Exception):
                await asyncio.shield(self._shutdown())

    async def _shutdown(self) -> None:
        if self.explainer is not None:
            await self.explainer.aclose()
        await self.journal.aclose()
        await self.scada.stop()
