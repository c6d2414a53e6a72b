"""The explainer sink: anomaly events in, explanations out later, never in the hot loop's way.

`observe` is a detection-loop listener: it keeps a short history of rows and SPC states and,
on a raised alarm, queues a snapshot. Overflow policy: the queue is bounded (`queue_size`);
when full, the OLDEST snapshot is dropped (the newest alarm matters most) and counted in
`stats.dropped`. `run` builds the facts, renders the template (always ready as the fallback)
and asks a separate worker process (lower priority, optionally pinned to a CPU) for the text.
An LLM answer goes through the grounding guard, in the worker process (never on this loop); a
refused one never leaves the worker: the template is published instead and the reason counted.
A worker that crashes or stays silent past `timeout_s` is killed and restarted, and that event
gets the template text. Every result goes to the publishers (OPC-UA
`LastExplanation`, the journal), linked to the event id, with its `guard` marker: `ok` (the
LLM's answer, passed), `template` (template mode) or the reason the LLM's answer was refused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing as mp
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.bundles.bundle import Bundle
from agent.config.explain import ExplainConfig
from agent.explain.facts import Facts, LineContext, PastEvent, Snapshot, build_facts
from agent.explain.template import render
from agent.explain.worker import WorkerSpec, serve
from agent.ops.counters import CounterRegistry
from agent.pipeline.evidence import Evidence
from agent.pipeline.line import LineResult
from agent.sinks.journal import read_events

if TYPE_CHECKING:
    from agent.config import SiteConfig
    from agent.sinks.journal import Journal
    from agent.sinks.scada import ScadaServer

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 60.0  # a worker not ready by then is killed and tried again next event


@dataclass(frozen=True)
class Explanation:
    """The text published for one event: where it came from, and why if not from the LLM."""

    event_id: str
    line: str
    ts: float
    text: str
    source: str  # "llm" or "template"
    reason: str = ""  # why the template was used in llm mode: guard verdict or worker failure
    facts: Facts | None = None

    @property
    def guard(self) -> str:
        """`ok` (an LLM answer the guard passed), `template`, or why the LLM's was not used."""
        if self.source == "llm":
            return "ok"
        return self.reason.split(":")[0] if self.reason else "template"

    @property
    def grounded(self) -> bool:
        """Every claim of the text is in the facts: the template, or a passed LLM answer."""
        return self.source in ("llm", "template")


@dataclass
class ExplainerStats:
    """Counters of the explainer, for SCADA and the benchmarks."""

    queued: int = 0
    dropped: int = 0
    explained: int = 0
    llm_accepted: int = 0
    template_used: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    worker_starts: int = 0
    worker_crashes: int = 0
    worker_timeouts: int = 0
    worker_pid: int | None = None

    @property
    def rejections(self) -> int:
        """LLM answers refused by the guard or lost, whatever the reason."""
        return sum(self.rejected.values())

    @property
    def worker_failures(self) -> int:
        """Worker crashes and hangs (each one restarted)."""
        return self.worker_crashes + self.worker_timeouts


Publisher = Callable[[Explanation], Awaitable[None]]


def line_context(bundle: Bundle, line: str) -> LineContext:
    """What the bundle says is normal: SPC centre and limits, and the training correlation."""
    m = bundle.manifest
    correlation = None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        matrix = np.asarray(m.training["correlation"], dtype=np.float64)
        if matrix.shape == (len(m.channels), len(m.channels)):
            correlation = matrix
    return LineContext(
        line=line,
        channels=tuple(m.channel_names),
        units=tuple(c.unit for c in m.channels),
        center=np.asarray(m.spc.center),
        sigma=np.asarray(m.spc.sigma),
        mr_bar=np.asarray(m.spc.mr_bar),
        nsigmas=m.spc.nsigmas,
        correlation=correlation,
    )


def past_events(
    journal: Path | None, exclude: str, limit: int = 200, line: str | None = None
) -> list[PastEvent]:
    """Earlier raised anomalies from the journal with their contributions and operator note
    (of `line` only, when given: a site of several lines journals them all in one file)."""
    if journal is None or not journal.is_file():
        return []
    try:
        rows = read_events(journal)
    except sqlite3.Error:
        return []
    # An operator's acknowledgement (kind `ack`, `ref` = the alarm) carries how it was resolved.
    ack_notes = {
        r["ref"]: str(r["details"].get("note") or "")
        for r in rows
        if r["kind"] == "ack" and r.get("ref") and r["details"].get("note")
    }
    found = []
    for r in rows[::-1]:
        details = r["details"]
        contrib = details.get("top_contributions")
        if r["event_id"] == exclude or r["state"] != "raised" or not isinstance(contrib, dict):
            continue
        if line is not None and r["line"] != line:
            continue
        note = str(ack_notes.get(r["event_id"]) or r.get("note") or details.get("note") or "")
        found.append(
            PastEvent(r["event_id"], r["ts"], {k: float(v) for k, v in contrib.items()}, note)
        )
        if len(found) >= limit:
            break
    return found


class ExplainerSink:
    """Feeds alarm snapshots to the worker process and publishes what comes back."""

    def __init__(
        self,
        config: ExplainConfig,
        context: LineContext,
        publishers: list[Publisher],
        journal: Path | None = None,
        factory: str | None = None,
        registry: CounterRegistry | None = None,
    ) -> None:
        self.config = config
        self.context = context
        self.publishers = publishers
        self.journal = journal
        self.spec = WorkerSpec(
            mode=config.mode, language=config.language, model=config.model,
            max_new_tokens=config.max_new_tokens, max_seconds=config.max_seconds,
            nice=config.nice, cpu=config.cpu, factory=factory or WorkerSpec.factory,
            catalogue=config.catalogue,
        )  # fmt: skip
        self.stats = ExplainerStats()
        if registry is not None:
            registry.register_part("explainer", self.stats)
        self._queue: collections.deque[Snapshot] = collections.deque()
        self._wake = asyncio.Event()
        self._evidence = Evidence(context.channels)
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._jobs = 0
        self.last_info: dict[str, Any] = {}  # what the worker said about its last job

    # -- the hot-loop side: cheap, never blocks -------------------------------------------
    def observe(self, result: LineResult) -> None:
        """Detection-loop listener: remember the row, queue a snapshot on a raised alarm."""
        for snapshot in self._evidence.observe(result, explain=self.config.enabled):
            self.send(snapshot)

    def send(self, snapshot: Snapshot) -> None:
        """Queue a snapshot; when the queue is full the oldest is dropped and counted."""
        if len(self._queue) >= self.config.queue_size:
            self._queue.popleft()
            self.stats.dropped += 1
        self._queue.append(snapshot)
        self.stats.queued += 1
        self._wake.set()

    # -- the worker side ------------------------------------------------------------------
    def _start_worker(self) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process running asyncio and onnxruntime
        parent, child = ctx.Pipe()
        process = ctx.Process(target=serve, args=(child, self.spec), name="lineside-explainer")
        process.daemon = True
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self.stats.worker_starts += 1
        self.stats.worker_pid = process.pid

    def _kill_worker(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is not None:
            process.kill()
            process.join(timeout=5)
        if conn is not None:
            conn.close()

    async def _receive(self, timeout: float) -> Any:
        """The worker's next message; TimeoutError if silent, EOFError if it died."""
        conn = self._conn
        assert conn is not None
        if not conn.poll():
            loop = asyncio.get_running_loop()
            readable = loop.create_future()
            fd = conn.fileno()

            def wake() -> None:
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(fd, wake)
            try:
                async with asyncio.timeout(timeout):
                    await readable
            finally:
                loop.remove_reader(fd)
        return conn.recv()

    async def _ask_worker(self, facts: Facts) -> tuple[str | None, str]:
        """The worker's text for these facts, or None and the reason it has none."""
        try:
            if self._process is None or not self._process.is_alive():
                if self._process is not None:
                    self.stats.worker_crashes += 1
                    self._kill_worker()
                self._start_worker()
                # Start-up (imports, loading the model) gets its own, longer deadline: on a
                # busy device it takes seconds, and it is not the hang `timeout_s` is for.
                await self._receive(max(self.config.timeout_s, STARTUP_TIMEOUT_S))  # "ready"
            assert self._conn is not None
            self._jobs += 1
            self._conn.send((self._jobs, facts))
            while True:
                job_id, text, info = await self._receive(self.config.timeout_s)
                if job_id == self._jobs:
                    self.last_info = info
                    break
        except TimeoutError:
            self.stats.worker_timeouts += 1
            log.warning("explainer worker silent for %.1f s: restarting it", self.config.timeout_s)
            self._kill_worker()
            return None, "worker-timeout"
        except (EOFError, OSError, BrokenPipeError):
            self.stats.worker_crashes += 1
            log.warning("explainer worker died: restarting it")
            self._kill_worker()
            return None, "worker-crashed"
        guard = self.last_info.get("guard")
        if guard not in (None, "ok"):
            detail = self.last_info.get("guard_detail", "")
            return None, f"{guard}: {detail}" if detail else str(guard)
        if text is None:
            return None, "worker-error"
        if self.config.mode == "llm" and guard != "ok":
            return None, "unguarded"  # never publish an answer the guard has not seen
        return str(text), ""

    async def explain(self, snapshot: Snapshot) -> Explanation:
        """Facts, template, worker, guard: the explanation of one snapshot."""
        event = snapshot.event
        past = await asyncio.to_thread(past_events, self.journal, event.event_id, line=event.line)
        facts = build_facts(snapshot, self.context, self.config.catalogue, past)
        template = render(facts, self.config.language)
        text, reason = await self._ask_worker(facts)
        source = "template"
        if text is not None and self.config.mode == "llm":
            source = "llm"  # the worker's guard passed it
        elif text is not None:
            template = text  # the worker rendered the template itself
        if source == "llm":
            self.stats.llm_accepted += 1
        else:
            self.stats.template_used += 1
            text = template
            if reason:
                key = reason.split(":")[0]
                self.stats.rejected[key] = self.stats.rejected.get(key, 0) + 1
        assert text is not None
        self.stats.explained += 1
        return Explanation(event.event_id, event.line, event.ts, text, source, reason, facts)

    async def run(self) -> None:
        """Explain queued snapshots one at a time and publish each result, until cancelled."""
        try:
            while True:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                explanation = await self.explain(self._queue.popleft())
                log.info(
                    "explanation of %s (%s%s): %s", explanation.event_id, explanation.source,
                    f", {explanation.reason}" if explanation.reason else "", explanation.text,
                )  # fmt: skip
                for publish in self.publishers:
                    try:
                        await publish(explanation)
                    except Exception:
                        log.exception("publishing an explanation failed")
        finally:
            self._stop_worker()

    def _stop_worker(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send(None)
        if self._process is not None:
            self._process.join(timeout=2)
        self._kill_worker()

    async def aclose(self) -> None:
        """Stop the worker process."""
        self._stop_worker()


def journal_publisher(journal: Journal) -> Publisher:
    """Journal an explanation as an `explanation` record whose `ref` is the event it explains."""

    async def publish(x: Explanation) -> None:
        top = x.facts.tags[0].tag if x.facts is not None and x.facts.tags else ""
        details = {"reason": x.reason, "tag": top, "line": x.line}
        journal.record_explanation(
            x.event_id,
            x.text,
            x.source,
            details | {"grounded": x.grounded, "guard": x.guard},
            line=x.line,
        )

    return publish


def make_explainer(
    config: SiteConfig, bundle: Bundle, scada: ScadaServer, journal: Journal
) -> ExplainerSink | None:
    """The agent's explainer, publishing to the OPC-UA server and the journal (None if off);
    its counters are registered with the server's registry, for Agent/."""
    if not config.explain.enabled:
        return None

    async def to_scada(x: Explanation) -> None:
        scada.publish_explanation(x.text, x.ts, x.event_id, x.guard, line=config.line)

    return ExplainerSink(
        config.explain,
        line_context(bundle, config.line),
        [to_scada, journal_publisher(journal)],
        journal=config.journal_path,
        registry=scada.registry,
    )
