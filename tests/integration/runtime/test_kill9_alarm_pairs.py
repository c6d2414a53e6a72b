"""Repeated kill -9 of `python -m agent run` mid-alarm: the journal's alarm edges stay in pairs.

The real agent polls the simulated extruder (pymodbus on loopback, 10x speed, fusion `shift`).
A step on melt pressure raises the shift alarm; the agent is killed with SIGKILL three times
while it holds (each time restarted on the same state directory), then the fault is removed
and a last agent clears it and stops cleanly. Per alarm kind the journal's edges alternate
raise, clear, raise, clear: no raise journaled twice under a new event_id, none left open.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from agent.config import load_config
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine, Fault, FaultKind
from agent.runtime.snapshot_file import snapshot_path
from agent.sinks.journal import open_alarm_edges, read_events
from tests.agent_rig import spawn
from tests.helpers import free_port, wait_for
from tests.integration.runtime.test_state_restart import SPEEDUP, crash_site

KILLS = 3


def _edges(path: Path) -> dict[str, list[str]]:
    by_kind: dict[str, list[str]] = {}
    for e in read_events(path):
        if e["kind"] in ("anomaly", "spc"):
            by_kind.setdefault(e["kind"], []).append(e["state"])
    return by_kind


async def test_kill_9_mid_alarm_leaves_raise_clear_pairs_and_no_orphans(
    bundle_dir: Path, tmp_path: Path
) -> None:
    plc_port = free_port()
    line = ExtrusionLine(seed=7)
    plc = SimulatedPlc(line, port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    plc_task = asyncio.create_task(plc.run())
    site = crash_site(tmp_path, bundle_dir, plc_port)
    config = load_config(site)
    journal = config.journal_path
    err = (tmp_path / "stderr.log").open("w")
    agent = spawn(["run", "--config", str(site)], {}, err)
    try:
        await wait_for(snapshot_path(journal.parent, config.line).exists, timeout=30)
        await asyncio.sleep(6.0)  # a warm shift baseline
        line.inject(Fault(FaultKind.STEP, "melt_pressure", 15.0))
        await wait_for(lambda: "raised" in _edges(journal).get("anomaly", []), timeout=20)
        for kill in range(KILLS):
            await asyncio.sleep(0.3 + 0.7 * kill)  # a different moment of the alarm each time
            agent.send_signal(signal.SIGKILL)
            assert agent.wait(timeout=10) == -signal.SIGKILL
            agent = spawn(["run", "--config", str(site)], {}, err)
            await asyncio.sleep(3.0)  # started, restored, settled against the journal
        line.clear()
        await wait_for(lambda: not open_alarm_edges(journal, config.line), timeout=60)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        err.close()
        plc_task.cancel()
        await asyncio.gather(plc_task, return_exceptions=True)
        await plc.stop()
    edges = _edges(journal)
    assert edges.get("anomaly"), edges
    for kind, states in edges.items():
        assert states[::2] == ["raised"] * len(states[::2]), (kind, states)
        assert states[1::2] == ["cleared"] * len(states[1::2]), (kind, states)
        assert len(states) % 2 == 0, f"{kind} left open: {states}"
    assert open_alarm_edges(journal, config.line) == []
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()
