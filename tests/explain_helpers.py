"""Helpers for explainer tests: a constructed line, its rows and snapshots, the demo catalogue,
and a collector that runs an explainer sink until it has answered."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from agent.config.catalogue import Catalogue, load_catalogue
from agent.demo.simulator.process import SIGNAL_NAMES
from agent.explain.facts import LineContext, Snapshot
from agent.paths import firmware_configs
from agent.types import Event, EventKind, EventState
from tests.helpers import wait_for

if TYPE_CHECKING:
    from agent.sinks.explainer import ExplainerSink, Explanation

CHANNELS = ("screw_speed", "throughput", "motor_current", "melt_pressure", "vibration_rms")
UNITS = ("rpm", "kg/h", "A", "bar", "mm/s")
N = 32


def demo_catalogue() -> Catalogue:
    """The demo extruder's failure-mode catalogue, its symptoms checked against the line's tags."""
    path = firmware_configs() / "failure-modes" / "demo-extruder.toml"
    return load_catalogue(path, tags=set(SIGNAL_NAMES))


def context(correlation: np.ndarray | None = None) -> LineContext:
    return LineContext(
        line="extruder-1",
        channels=CHANNELS,
        units=UNITS,
        center=np.array([80.0, 100.0, 60.0, 190.0, 1.0]),
        sigma=np.array([1.0, 2.0, 1.0, 3.0, 0.1]),
        mr_bar=np.array([0.3, 0.5, 0.3, 0.9, 0.06]),
        correlation=correlation,
    )


def normal_rows(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ctx = context()
    return ctx.center + rng.normal(size=(N, len(CHANNELS))) * (ctx.mr_bar / 1.128)


def event(contrib: tuple[float, ...], tag: str = "", score: float = 12.0) -> Event:
    return Event(
        ts=1000.0 + N - 1,
        line="extruder-1",
        kind=EventKind.ANOMALY,
        state=EventState.RAISED,
        detector="vae",
        severity=700,
        message="anomaly",
        tag=tag,
        score=score,
        threshold=8.0,
    )


def snapshot(rows, contrib, rules=None) -> Snapshot:
    ts = 1000.0 + np.arange(N, dtype=np.float64)
    top = CHANNELS[int(np.argmax(contrib))]
    return Snapshot(event(contrib, top), ts, rows, contrib, rules or {})


def pressure_snapshot(line: str = "extruder-1") -> Snapshot:
    rows = normal_rows()
    rows[16:, 3] += 15.0
    rows[:, 1] -= np.linspace(0.0, 9.0, N)
    snap = snapshot(rows, (0.9, 4.0, 1.0, 12.0, 0.8))
    return dataclasses.replace(snap, event=dataclasses.replace(snap.event, line=line))


class Collector:
    def __init__(self) -> None:
        self.items: list[Explanation] = []

    async def __call__(self, explanation: Explanation) -> None:
        self.items.append(explanation)


async def run_sink(sink: ExplainerSink, collector: Collector, count: int, timeout: float = 60):
    task = asyncio.create_task(sink.run())
    try:
        await wait_for(lambda: len(collector.items) >= count, timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return collector.items
