"""An agent restarted during an active fault keeps the fault visible: the detector state survives.

The real agent polls the simulated extruder (a pymodbus server on loopback) at 10x speed with
fusion `shift`, so the line's alarm is the drift-tolerant shift detector's. A sustained step on
melt pressure raises it; the agent is stopped cleanly and started again on the same state
directory while the step goes on. With the snapshot restored, the alarm is active from the
first sample after the restart, holds while the fault lasts, and clears once it is removed;
the journal shows one raise and one clear. With restore switched off (`state_max_age_s = 0`)
the fresh shift detector learns the faulty level as its baseline and the fault is hidden: the
same restart shows no alarm, which is what this feature exists to prevent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import time
from pathlib import Path

import pytest

from agent.config import SiteConfig, load_config
from agent.demo.run import write_site_file
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine, Fault, FaultKind
from agent.runtime.app import Agent
from agent.runtime.snapshot_file import fingerprint, snapshot_path
from agent.sinks.journal import read_events
from tests.agent_rig import AgentRun, UpdateRig, spawn
from tests.helpers import SCADA_PASSWORD, free_port, site_config, wait_for
from tests.scada_helpers import viewer_client

SPEEDUP = 10.0


def config_for(bundle_dir: Path, state: Path, plc_port: int, max_age_s: float) -> SiteConfig:
    config = site_config(bundle_dir, state, plc_port, free_port(), SPEEDUP)
    detection = dataclasses.replace(
        config.detection, fusion="shift", state_interval_s=0.5, state_max_age_s=max_age_s
    )
    return dataclasses.replace(config, detection=detection)


@pytest.mark.parametrize("restore", [True, False], ids=["restored", "restore-off"])
async def test_a_restart_during_a_fault_keeps_the_alarm_only_with_the_state_restored(
    bundle_dir: Path, tmp_path: Path, restore: bool
) -> None:
    plc_port = free_port()
    line = ExtrusionLine(seed=7)
    plc = SimulatedPlc(line, port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    plc_task = asyncio.create_task(plc.run())
    config = config_for(bundle_dir, tmp_path, plc_port, 3600.0 if restore else 0.0)
    try:
        first = await AgentRun(config).started()
        await wait_for(lambda: len(first.shift()) >= 60, timeout=20)  # 60 rows, 6 s
        assert not any(first.shift()), "shift alarm on the healthy line"
        # Bounds are generous: a loaded CI box, not a speed bound.
        line.inject(Fault(FaultKind.STEP, "melt_pressure", 15.0))
        await wait_for(lambda: first.agent.monitor.shift_active, timeout=30)
        await asyncio.sleep(1.0)  # a few periodic snapshots during the fault
        await first.stop()
        assert first.shift()[-1], "the fault was still on when the agent stopped"
        written = first.agent.snapshots.stats.written
        assert written >= 2 and first.agent.snapshots.stats.failed == 0
        assert snapshot_path(tmp_path, config.line).exists()

        second = await AgentRun(config).started()
        stats = second.agent.snapshots.stats
        assert (stats.restored, stats.refused) == ((1, 0) if restore else (0, 1))
        await wait_for(lambda: len(second.shift()) >= 30, timeout=30)  # 30 rows of fault
        after = second.shift()
        if not restore:
            assert stats.refusal == "restore-off"
            assert not any(after), "a fresh shift detector alarmed on the faulty level"
            await second.stop()
            return
        assert all(after), f"alarm not held after the restart: {after}"
        client = await viewer_client(config.opcua, tmp_path / "scada", SCADA_PASSWORD)
        await client.connect()
        try:
            ns = await client.get_namespace_index("urn:lineside")
            node = client.get_node(f"ns={ns};s=Agent/SnapshotsRestored")
            assert await node.read_value() == 1
            alarm = client.get_node(f"ns={ns};s=Lines/{config.line}/AlarmActive")
            assert await alarm.read_value() is True
            # The alarm condition of the new server is open again, as the raise journaled
            # before the stop (its EventId is what an operator's acknowledgement names).
            condition = client.get_node(f"ns={ns};s=Lines/{config.line}/Alarms/Anomaly")
            active = await condition.get_child(["0:ActiveState", "0:Id"])
            assert await active.read_value() is True
            (raised,) = [e for e in read_events(config.journal_path) if e["kind"] == "anomaly"]
            assert second.agent.scada.alarms is not None
            book = second.agent.scada.alarms
            assert raised["event_id"] in {c.alarm_id for c in book.conditions.values()}
        finally:
            await client.disconnect()

        line.clear()
        await wait_for(lambda: not second.agent.monitor.shift_active, timeout=15)
        await second.stop()
        await asyncio.sleep(0)
        events = read_events(config.journal_path)
        assert [e["state"] for e in events if e["kind"] == "anomaly"] == ["raised", "cleared"]
    finally:
        plc_task.cancel()
        await asyncio.gather(plc_task, return_exceptions=True)
        await plc.stop()


async def test_a_snapshot_follows_a_hot_swap_and_never_crosses_a_model_change(
    bundle_dir: Path, tmp_path: Path
) -> None:
    async with UpdateRig(bundle_dir, tmp_path) as run:
        old = fingerprint(run.agent.monitor)
        await run.install(2, lambda m: m["spc"].update(nsigmas=3.5))  # new SPC limits
        await wait_for(lambda: run.agent.updates.state.version == 2, timeout=15)
        snapshot = run.agent.snapshot()  # as the snapshot task takes it, between samples
        assert snapshot["model_version"] == 2 and snapshot["label"] == "v2"
        assert snapshot["fingerprint"] == fingerprint(run.agent.monitor) != old
    path = snapshot_path(run.config.journal_path.parent, run.config.line)
    assert json.loads(path.read_text())["model_version"] == 2  # the last write, at the stop
    restarted = Agent(run.config)  # still model 2 (its probation resumes)
    assert restarted.snapshots.stats.restored == 1
    run.store.rollback(to=1)  # model 1 again, with a snapshot of model 2 on disk
    back = Agent(run.config)
    assert back.bundle.manifest.model_version == 1
    stats = back.snapshots.stats
    assert (stats.restored, stats.refusal) == (0, "other-model")


def crash_site(state: Path, bundle_dir: Path, plc_port: int) -> Path:
    """The example site file at 10x speed with fusion `shift` and a snapshot every 0.5 s."""
    site = write_site_file(state, bundle_dir, plc_port, free_port())
    text = site.read_text()
    for old, new in (
        ('fusion = "vae-or-spc"', 'fusion = "shift"'),
        ("state_interval_s = 10.0", "state_interval_s = 0.5"),
        ("poll_interval_s = 1.0", f"poll_interval_s = {1.0 / SPEEDUP:g}"),
        ("timeout_s = 0.5", f"timeout_s = {0.5 / SPEEDUP:g}"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    site.write_text(text)
    return site


async def test_a_kill_9_during_a_fault_restores_the_last_periodic_snapshot(
    bundle_dir: Path, tmp_path: Path
) -> None:
    """No drain, no final write: the agent process is killed with SIGKILL (what systemd does
    after a watchdog timeout) while the fault holds. The next start restores the periodic
    snapshot written before the kill, and the alarm holds from its first sample."""
    plc_port = free_port()
    line = ExtrusionLine(seed=7)
    plc = SimulatedPlc(line, port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    plc_task = asyncio.create_task(plc.run())
    site = crash_site(tmp_path, bundle_dir, plc_port)
    config = load_config(site)
    snapshot = snapshot_path(config.journal_path.parent, config.line)
    try:
        with (tmp_path / "stderr.log").open("w") as err:
            agent = spawn(["run", "--config", str(site)], {}, err)
        try:
            await wait_for(snapshot.exists, timeout=30)
            await asyncio.sleep(6.0)  # 60 healthy rows: the shift baseline is warm
            line.inject(Fault(FaultKind.STEP, "melt_pressure", 15.0))

            def raised() -> bool:
                events = read_events(config.journal_path)
                return any(e["kind"] == "anomaly" and e["state"] == "raised" for e in events)

            await wait_for(raised, timeout=15)
            raised_at = time.time()
            await wait_for(
                lambda: json.loads(snapshot.read_text())["written_at"] > raised_at + 0.5,
                timeout=10,
            )
            agent.send_signal(signal.SIGKILL)
            assert agent.wait(timeout=10) == -signal.SIGKILL
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()

        second = await AgentRun(config).started()
        stats = second.agent.snapshots.stats
        assert (stats.restored, stats.refused) == (1, 0)
        await wait_for(lambda: len(second.shift()) >= 30, timeout=30)
        after = second.shift()
        assert all(after), f"alarm not held after the kill -9: {after}"
        await second.stop()
    finally:
        plc_task.cancel()
        await asyncio.gather(plc_task, return_exceptions=True)
        await plc.stop()
