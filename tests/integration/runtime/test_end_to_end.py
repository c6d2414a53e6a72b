"""Simulator -> agent -> OPC-UA client acting as SCADA, all real, on loopback, at 10x speed.

The SCADA client takes the secure path: SignAndEncrypt with a trusted client certificate and
the `viewer` user, as a plant would.

Bounds stated here, in line seconds (the simulator runs 10 line seconds per wall second):
- a +8 bar step on melt pressure raises AlarmActive within 20 line seconds;
- after the fault clears, AlarmActive falls within 80 line seconds (the 32-sample window must
  flush the faulty samples, then 10 normal samples clear the alarm);
- no alarm during a 60 line-second normal stretch before the fault.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncua import Client, Node, ua

from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine, Fault, FaultKind
from agent.runtime.app import Agent
from agent.sinks.journal import read_events
from tests.helpers import SCADA_PASSWORD, eventually, free_port, site_config, wait_for
from tests.scada_helpers import viewer_client

SPEEDUP = 10.0


async def read_bool(client: Client, node: str) -> bool:
    return bool(await client.get_node(node).read_value())


async def status_of(node: Node) -> int:
    return int((await node.read_data_value(raise_on_bad_status=False)).StatusCode.value)


async def test_step_fault_raises_and_clears_the_scada_alarm(
    bundle_dir: Path, tmp_path: Path
) -> None:
    plc_port, opcua_port = free_port(), free_port()
    config = site_config(bundle_dir, tmp_path, plc_port, opcua_port, SPEEDUP)
    line = ExtrusionLine(seed=7)
    plc = SimulatedPlc(line, port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    agent = Agent(config)
    ready = asyncio.Event()
    tasks = [asyncio.create_task(plc.run()), asyncio.create_task(agent.run(ready))]
    client = await viewer_client(config.opcua, tmp_path / "scada", SCADA_PASSWORD)
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await client.connect()
        ns = await client.get_namespace_index("urn:lineside")
        alarm = f"ns={ns};s=Lines/extruder-1/AlarmActive"
        # The step is judged on the VAE alarm: SPC may catch it too, and sooner, but then the
        # fault could be cleared before the anomaly alarm it is meant to raise.
        anomaly = f"ns={ns};s=Lines/extruder-1/AnomalyActive"
        score = client.get_node(f"ns={ns};s=Lines/extruder-1/AnomalyScore")
        pressure = client.get_node(f"ns={ns};s=Lines/extruder-1/Signals/melt_pressure/Value")

        # Window fill (32 samples), then a normal stretch of 60 line seconds: no alarm.
        await wait_for(lambda: agent.monitor.last_score is not None, timeout=10)
        seen_alarm = False
        for _ in range(int(60 / SPEEDUP / 0.1)):
            seen_alarm |= await read_bool(client, alarm)
            await asyncio.sleep(0.1)
        assert not seen_alarm, "alarm during normal operation"
        normal_score = float(await score.read_value())
        value = await pressure.read_data_value()
        assert value.StatusCode.is_good()
        assert 160.0 < value.Value.Value < 200.0

        async def alarm_on() -> bool:
            return await read_bool(client, anomaly) and await read_bool(client, alarm)

        async def alarm_off() -> bool:
            return not await read_bool(client, anomaly)

        line.inject(Fault(FaultKind.STEP, "melt_pressure", 8.0))
        raised_after = await eventually(alarm_on, 20 / SPEEDUP)
        assert float(await score.read_value()) > normal_score

        line.clear()
        cleared_after = await eventually(alarm_off, 80 / SPEEDUP)
        await asyncio.sleep(0.5)  # the journal commits at least every 250 ms
        events = read_events(config.journal_path)
        assert [e["state"] for e in events if e["kind"] == "anomaly"] == ["raised", "cleared"]
        raised = next(e for e in events if e["kind"] == "anomaly" and e["state"] == "raised")
        assert raised["tag"] == "melt_pressure"
        print(
            f"raised after {raised_after * SPEEDUP:.1f} line s, "
            f"cleared after {cleared_after * SPEEDUP:.1f} line s"
        )
    finally:
        await client.disconnect()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plc.stop()


async def test_unreachable_plc_publishes_bad_quality_and_recovers(
    bundle_dir: Path, tmp_path: Path
) -> None:
    plc_port, opcua_port = free_port(), free_port()
    config = site_config(bundle_dir, tmp_path, plc_port, opcua_port, SPEEDUP)
    agent = Agent(config)  # nothing listens on plc_port yet
    ready = asyncio.Event()
    task = asyncio.create_task(agent.run(ready))
    plc = SimulatedPlc(ExtrusionLine(seed=3), port=plc_port, period_s=1.0 / SPEEDUP)
    client = await viewer_client(config.opcua, tmp_path / "scada", SCADA_PASSWORD)
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await client.connect()
        ns = await client.get_namespace_index("urn:lineside")
        value = client.get_node(f"ns={ns};s=Lines/extruder-1/Signals/screw_speed/Value")
        quality = client.get_node(f"ns={ns};s=Lines/extruder-1/Signals/screw_speed/Quality")

        async def bad() -> bool:
            return await status_of(value) == ua.StatusCodes.BadNoCommunication

        async def good() -> bool:
            return await status_of(value) == ua.StatusCodes.Good

        await eventually(bad, 5)
        reason = await quality.read_value()
        assert reason.startswith("bad: ") and str(plc_port) in reason
        alarm = client.get_node(f"ns={ns};s=Lines/extruder-1/AlarmActive")
        flag = await alarm.read_data_value(raise_on_bad_status=False)
        # blind detectors: the alarm flag is only the last usable value, and says so
        assert flag.StatusCode.value == ua.StatusCodes.UncertainLastUsableValue
        assert agent.sources[0].stats.failures >= 1
        assert not task.done()  # the agent keeps running

        await plc.start()
        plc_task = asyncio.create_task(plc.run())
        await eventually(good, 5)
        assert await quality.read_value() == "good"
        plc_task.cancel()
        await asyncio.gather(plc_task, return_exceptions=True)
    finally:
        await client.disconnect()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await plc.stop()


def test_wait_for_helper_times_out() -> None:
    async def never() -> None:
        await wait_for(lambda: False, timeout=0.1)

    try:
        asyncio.run(never())
    except TimeoutError:
        return
    raise AssertionError("wait_for did not time out")
