"""The explainer sink with real worker processes: template, priority, crash, hang, lies, drops.

The faulty explainers below run inside a real spawned worker, selected by the event's line
name, behind our own factory interface (`WorkerSpec.factory`).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from agent.config.explain import ExplainConfig
from agent.explain.facts import Facts, build_facts
from agent.explain.template import render
from agent.sinks.explainer import ExplainerSink
from tests.explain_helpers import Collector, context, pressure_snapshot, run_sink
from tests.helpers import wait_for

FAULTS = "tests.integration.sinks.test_explainer_worker:faulty_explainer"


def faulty_explainer(spec: Any):
    """A worker-side explainer that misbehaves on demand (by the event's line name)."""

    def explain(facts: Facts) -> tuple[str, dict[str, Any]]:
        if facts.line == "crash":
            os._exit(3)
        if facts.line == "hang":
            time.sleep(3600)
        if facts.line == "raise":
            raise RuntimeError("explainer bug")
        if facts.line == "lie":
            return "melt_pressure has reached 999.0 bar.", {}
        return render(facts, spec.language), {"tokens": 1}  # a faithful answer

    return explain


async def test_template_worker_runs_niced_in_its_own_process(catalogue) -> None:
    config = ExplainConfig(catalogue=catalogue, nice=7, cpu=0)
    out = Collector()
    sink = ExplainerSink(config, context(), [out])
    snap = pressure_snapshot()
    sink.send(snap)
    task = asyncio.create_task(sink.run())
    try:
        await wait_for(lambda: len(out.items) == 1, 60)
        pid = sink.stats.worker_pid
        assert pid is not None and pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + 7
        assert os.sched_getaffinity(pid) == {0}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    expected = render(build_facts(snap, context(), catalogue), "en")
    assert out.items[0].text == expected
    assert out.items[0].source == "template" and out.items[0].event_id == snap.event.event_id
    assert "clogged screen pack" in expected
    assert sink.stats.worker_starts == 1 and sink.stats.template_used == 1
    await wait_for(lambda: not _alive(pid), 10)  # the worker stops with the sink


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


@pytest.mark.parametrize(
    ("fault", "reason", "counter"),
    [
        ("crash", "worker-crashed", "worker_crashes"),
        ("hang", "worker-timeout", "worker_timeouts"),
        ("raise", "worker-error", None),
    ],
)
async def test_a_broken_worker_gives_the_template_and_is_replaced(
    catalogue, fault, reason, counter
) -> None:
    config = ExplainConfig(mode="llm", catalogue=catalogue, timeout_s=3.0, max_seconds=1.0)
    out = Collector()
    sink = ExplainerSink(config, context(), [out], factory=FAULTS)
    bad, good = pressure_snapshot(fault), pressure_snapshot()
    sink.send(bad)
    sink.send(good)
    first, second = await run_sink(sink, out, 2)
    assert first.source == "template" and first.reason == reason
    assert first.text == render(build_facts(bad, context(), catalogue), "en")
    assert second.source == "llm" and sink.last_info["tokens"] == 1
    if counter is not None:
        assert getattr(sink.stats, counter) == 1
        assert sink.stats.worker_starts == 2  # killed and restarted
    else:
        assert sink.stats.worker_starts == 1  # an exception in the explainer is not a crash
    assert sink.stats.rejected == {reason: 1}


async def test_an_ungrounded_llm_answer_is_replaced_by_the_template(catalogue) -> None:
    config = ExplainConfig(mode="llm", catalogue=catalogue)
    out = Collector()
    sink = ExplainerSink(config, context(), [out], factory=FAULTS)
    sink.send(pressure_snapshot("lie"))
    (only,) = await run_sink(sink, out, 1)
    assert only.source == "template"
    assert only.reason == "wrong-number: 999.0 bar of melt_pressure"
    assert sink.stats.rejected == {"wrong-number": 1} and sink.stats.llm_accepted == 0


async def test_full_queue_drops_the_oldest_and_counts(catalogue) -> None:
    config = ExplainConfig(catalogue=catalogue, queue_size=2)
    out = Collector()
    sink = ExplainerSink(config, context(), [out])
    snaps = [pressure_snapshot() for _ in range(5)]
    for s in snaps:
        sink.send(s)
    assert sink.stats.dropped == 3
    items = await run_sink(sink, out, 2)
    assert [e.event_id for e in items] == [s.event.event_id for s in snaps[3:]]
