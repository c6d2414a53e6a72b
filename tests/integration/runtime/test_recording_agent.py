"""The agent with `[record]`: every sample recorded beside detection; a recording disk that
fills raises the journaled `recording` alarm, detection goes on, and the alarm clears once the
disk has room again. The simulated line and the agent run for real on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from agent.config.record import RecordConfig
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine
from agent.runtime.app import Agent
from agent.sinks.journal import read_events
from agent.sinks.scada.limits import AgentCounters
from export.data import read_table
from tests.agent_rig import AgentRun
from tests.helpers import free_port, site_config, wait_for
from tests.recording_helpers import FillingDisk

SPEEDUP = 20.0


async def test_a_full_recording_disk_is_alarmed_while_detection_goes_on(
    bundle_dir: Path, tmp_path: Path
) -> None:
    plc_port, opcua_port = free_port(), free_port()
    config = site_config(bundle_dir, tmp_path, plc_port, opcua_port, SPEEDUP)
    config = replace(config, record=RecordConfig(path=tmp_path / "rec", fsync_s=0.2))
    plc = SimulatedPlc(ExtrusionLine(seed=3), port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    agent = Agent(config)
    recorder = agent.recorder
    assert recorder is not None
    disk = FillingDisk()
    recorder.writer.opener = disk  # the recorder's own file seam: this disk fills on demand
    recorder.retry_s = 0.3
    counters = AgentCounters(agent.registry)
    plc_task = asyncio.create_task(plc.run())
    run = await AgentRun(config, agent).started()
    try:
        await wait_for(lambda: recorder.stats.rows >= 10, 10)
        assert counters.recording_state == "writing"
        disk.full = True
        await wait_for(lambda: recorder.stopped, 10)
        assert counters.recording_state.startswith("stopped: ENOSPC (No space left on device)")
        processed = agent.loop.processed
        await wait_for(lambda: agent.loop.processed >= processed + 20, 10)  # detection goes on
        assert recorder.stopped and counters.recording_errors >= 1
        disk.full = False
        await wait_for(lambda: not recorder.stopped, 10)
        resumed_at = recorder.stats.rows
        await wait_for(lambda: recorder.stats.rows >= resumed_at + 10, 10)
        assert counters.recording_state == "writing"
    finally:
        await run.stop()
        plc_task.cancel()
        await asyncio.gather(plc_task, return_exceptions=True)
        await plc.stop()
    events = [e for e in read_events(config.journal_path) if e["kind"] == "recording"]
    assert [e["state"] for e in events] == ["raised", "cleared"]
    assert "ENOSPC" in events[0]["message"] and "detection goes on" in events[0]["message"]
    assert events[1]["message"].startswith("recording resumed: writing")
    assert len(disk.opened) >= 2  # a new file after the disk freed
    table = read_table(tmp_path / "rec")  # whole rows only, every file readable
    assert table.rows + table.dropped == recorder.stats.rows
    assert recorder.stats.missed > 0 and recorder.stats.drops == 0
