"""Commissioning mode for real: a site with no model, the simulated line over Modbus TCP, and
a SCADA client on the agent's OPC-UA server, all on loopback at 10x speed.

Values are on OPC-UA from the first poll; learning shows on Lines/<line>/Learning*, waits
while the PLC is down, ends with SPC and shift alarms on the learnt limits; a restart resumes
them; a first bundle installed in the state directory's store ends the commissioning run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from asyncua import Client

from agent.config.learning import LearningConfig
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine, Fault, FaultKind
from agent.runtime.app import Agent
from agent.runtime.commissioning import learned_path
from agent.sinks.journal import read_events
from tests.agent_rig import AgentRun
from tests.bundle_kit import installed_store, make_keys, signed
from tests.helpers import SCADA_PASSWORD, eventually, free_port, site_config
from tests.scada_helpers import viewer_client

SPEEDUP = 10.0
LEARNING = LearningConfig(period_s=20.0, min_rows=40, max_rows=10_000)  # 200 rows at 10 Hz


def commissioning_site(tmp_path: Path, plc_port: int, opcua_port: int) -> object:
    """The example site with its [model] taken out and a short learning period."""
    config = site_config(tmp_path / "no-bundle", tmp_path, plc_port, opcua_port, SPEEDUP)
    return dataclasses.replace(config, bundle=None, learning=LEARNING)


async def read(client: Client, ns: int, path: str) -> object:
    return await client.get_node(f"ns={ns};s={path}").read_value()


async def test_a_site_with_no_model_publishes_learns_and_then_alarms(tmp_path: Path) -> None:
    plc_port, opcua_port = free_port(), free_port()
    config = commissioning_site(tmp_path, plc_port, opcua_port)
    line = ExtrusionLine(seed=3)
    plc = SimulatedPlc(line, port=plc_port, period_s=1.0 / SPEEDUP)
    run = AgentRun(config)  # the PLC is not up yet: learning must wait for it
    client = await viewer_client(config.opcua, tmp_path / "scada", SCADA_PASSWORD)
    plc_task: asyncio.Task[None] | None = None
    try:
        await run.started(timeout=15)
        await client.connect()
        ns = await client.get_namespace_index("urn:lineside")
        base = f"Lines/{config.line}"
        assert await read(client, ns, f"{base}/Learning") is True
        assert await read(client, ns, f"{base}/LearningState") == "waiting for good data"
        await asyncio.sleep(1.0)  # ten polls that fail: nothing is learnt from them
        assert run.agent.commissioning is not None
        assert run.agent.commissioning.learner.rows == 0

        await plc.start()
        plc_task = asyncio.create_task(plc.run())
        pressure = client.get_node(f"ns={ns};s={base}/Signals/melt_pressure/Value")

        async def good_value() -> bool:
            value = await pressure.read_data_value(raise_on_bad_status=False)
            return bool(value.StatusCode.is_good())

        await eventually(good_value, timeout=5)

        async def learning() -> bool:
            return await read(client, ns, f"{base}/LearningState") == "learning"

        await eventually(learning, timeout=5)
        progress = await read(client, ns, f"{base}/LearningProgress")
        assert isinstance(progress, float) and 0.0 <= progress < 100.0
        assert (await read(client, ns, f"{base}/LearningEtaS")) > 0.0

        async def learned() -> bool:
            return await read(client, ns, f"{base}/LearningState") == "learned"

        await eventually(learned, timeout=40)
        assert await read(client, ns, f"{base}/Learning") is False
        assert await read(client, ns, f"{base}/LearningProgress") == 100.0
        path = learned_path(config.state_dir, config.line)
        await eventually(lambda: asyncio.sleep(0, path.exists()), timeout=5)
        kept = json.loads(path.read_text())
        assert "melt_pressure" in kept["modelled"]

        async def journaled() -> bool:
            rows = read_events(config.journal_path)
            return any(
                e["kind"] == "model_change" and "limits learnt on the device" in e["message"]
                for e in rows
            )

        await eventually(journaled, timeout=5)

        await asyncio.sleep(1.0)  # normal running on the learnt limits
        line.inject(Fault(FaultKind.STEP, "melt_pressure", 8.0))
        pressure_state = f"{base}/Signals/melt_pressure/SpcState"

        async def step_charted() -> bool:
            return await read(client, ns, pressure_state) not in ("in-control", "learning")

        # The step breaks the learnt limits of its own tag, and the line's SPC alarm holds (a
        # learning period this short may have raised it before on another tag: the simulated
        # line wanders more than 20 line seconds show).
        await eventually(step_charted, timeout=10)

        async def spc_alarm() -> bool:
            return bool(await read(client, ns, f"{base}/SpcAlarmActive"))

        await eventually(spc_alarm, timeout=10)
        assert await read(client, ns, pressure_state) != "learning"
    finally:
        await client.disconnect()
        await run.stop()
        if plc_task is not None:
            plc_task.cancel()
            await asyncio.gather(plc_task, return_exceptions=True)
        await plc.stop()

    # A restart resumes on the limits learnt before: no second learning period.
    again = Agent(config)
    assert again.commissioning is not None and again.commissioning.learned is not None
    assert again.commissioning.status().state == "learned"


async def test_a_first_installed_bundle_ends_the_commissioning_run(
    bundle_dir: Path, tmp_path: Path
) -> None:
    plc_port, opcua_port = free_port(), free_port()
    config = commissioning_site(tmp_path, plc_port, opcua_port)
    plc = SimulatedPlc(ExtrusionLine(seed=4), port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    plc_task = asyncio.create_task(plc.run())
    run = AgentRun(config)
    try:
        await run.started(timeout=15)
        assert run.agent.model_arrived is None
        key, trust, _ = make_keys(tmp_path)
        (tmp_path / "files").mkdir()
        bundle = signed(bundle_dir, key, tmp_path / "files", 1)
        await asyncio.to_thread(installed_store, config.model_store, bundle, trust)
        await asyncio.wait_for(run.task, timeout=10)  # the run ends by itself, drained
        assert run.agent.model_arrived == config.model_store / "models" / "current"
        with_model = Agent(dataclasses.replace(config, bundle=run.agent.model_arrived))
        assert with_model.commissioning is None and with_model.model_version == "1"
    finally:
        await run.stop()
        plc_task.cancel()
        await asyncio.gather(plc_task, return_exceptions=True)
        await plc.stop()
