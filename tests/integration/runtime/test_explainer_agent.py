"""The whole agent with its explainer: a real fault, a real (hung) worker, real OPC-UA and SQLite.

While the worker hangs, detection keeps its pace; after `timeout_s` the worker is killed and
restarted, and the event's template text reaches SCADA's LastExplanation and the journal,
linked to the anomaly event's id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine, Fault, FaultKind
from agent.explain.facts import Facts
from agent.runtime.app import Agent
from agent.sinks.journal import read_events
from tests.helpers import SCADA_PASSWORD, eventually, free_port, site_config, wait_for
from tests.scada_helpers import viewer_client

SPEEDUP = 10.0


def hanging_explainer(spec: Any):
    """A worker-side explainer that never answers."""

    def explain(facts: Facts) -> tuple[str, dict[str, Any]]:
        time.sleep(3600)
        raise AssertionError("unreachable")

    return explain


async def test_hung_explainer_never_slows_detection(bundle_dir: Path, tmp_path: Path) -> None:
    plc_port, opcua_port = free_port(), free_port()
    config = site_config(bundle_dir, tmp_path, plc_port, opcua_port, SPEEDUP)
    config = dataclasses.replace(
        config,
        explain=dataclasses.replace(config.explain, mode="llm", timeout_s=4.0, max_seconds=1.0),
    )
    line = ExtrusionLine(seed=7)
    plc = SimulatedPlc(line, port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    agent = Agent(config)
    assert agent.explainer is not None
    agent.explainer.spec = dataclasses.replace(
        agent.explainer.spec,
        factory=f"{__name__}:hanging_explainer",
    )
    ready = asyncio.Event()
    tasks = [asyncio.create_task(plc.run()), asyncio.create_task(agent.run(ready))]
    client = await viewer_client(config.opcua, tmp_path / "scada", SCADA_PASSWORD)
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await client.connect()
        ns = await client.get_namespace_index("urn:lineside")
        text_node = client.get_node(f"ns={ns};s=Lines/extruder-1/LastExplanation")
        event_node = client.get_node(f"ns={ns};s=Lines/extruder-1/LastExplanationEvent")
        await wait_for(lambda: agent.monitor.last_score is not None, timeout=15)
        counters = agent.scada.counters

        line.inject(Fault(FaultKind.STEP, "melt_pressure", 8.0))
        stats = agent.explainer.stats
        await wait_for(lambda: stats.worker_starts == 1, timeout=30)
        await asyncio.sleep(1.0)  # the worker is up and now hangs on the job
        before, t0 = counters.samples_processed, time.monotonic()
        await wait_for(lambda: stats.worker_timeouts == 1, timeout=15)
        rate = (counters.samples_processed - before) / (time.monotonic() - t0)
        assert rate > 0.8 * SPEEDUP, f"detection slowed to {rate:.1f} samples/s"

        await wait_for(lambda: stats.explained >= 1, timeout=5)
        await asyncio.sleep(0.5)
        text = str(await text_node.read_value())
        event_id = str(await event_node.read_value())
        assert text.startswith("Anomaly on line extruder-1") or text.startswith("SPC alarm")
        assert "melt_pressure" in text
        await asyncio.sleep(0.5)  # the journal commits at least every 250 ms
        events = read_events(config.journal_path)
        explained = [e for e in events if e["kind"] == "explanation"]
        alarms = {e["event_id"] for e in events if e["kind"] in ("anomaly", "spc")}
        assert explained and explained[0]["ref"] in alarms
        assert explained[0]["details"]["reason"] == "worker-timeout"
        assert event_id == explained[-1]["ref"]
        assert [e["state"] for e in events if e["kind"] == "anomaly"][:1] == ["raised"]

        async def agent_figure(name: str) -> int:
            return int(await client.get_node(f"ns={ns};s=Agent/{name}").read_value())

        # SCADA sees the fallback too: one hung worker, its answer lost, the template used.
        async def one_failure() -> bool:
            return await agent_figure("ExplainerWorkerFailures") == 1

        await eventually(one_failure, timeout=5)
        assert await agent_figure("ExplanationsTemplate") >= 1
        assert await agent_figure("ExplanationsLlm") == 0
        assert await agent_figure("ExplainerRejections") >= 1
        assert await agent_figure("ExplainerQueueDrops") == stats.dropped
    finally:
        await client.disconnect()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plc.stop()
