"""A site of two lines in one agent, for real: two simulated PLCs (pymodbus on loopback), each
line with its own signed model in its own store, one OPC-UA server read by a SignAndEncrypt
asyncua client, one SQLite journal; at 10x speed.

A fault on line 2's PLC raises line 2's alarm and never line 1's; each line's folder shows its
own model; journal rows carry their line; STATUS= and the heartbeat name both lines; a new
model in one line's store swaps that line's only; a first bundle installed for a commissioning
line (`bundle install --line`) ends the run for that line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from asyncua import Client

from agent.bundles.install import install_file
from agent.bundles.store import ModelStore
from agent.config import SiteConfig, load_config
from agent.demo.run import demo_opcua
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine, Fault, FaultKind
from agent.ops.systemd import HEARTBEAT_NAME, health, runtime_dir
from agent.paths import firmware_configs
from agent.runtime.daemon import on_first_model
from agent.sinks.journal import read_events
from tests.agent_rig import AgentRun
from tests.bundle_kit import installed_store, make_keys, signed
from tests.helpers import REPO, SCADA_PASSWORD, eventually, free_port, wait_for
from tests.scada_helpers import viewer_client

SPEEDUP = 10.0
LINES = ("extruder-1", "extruder-2")
TAG_MAP = firmware_configs() / "plc" / "simulated-extruder.toml"


def line_table(name: str, port: int, bundle: Path | None) -> str:
    """One `[[line]]` with its PLC (the simulated extruder on `port`) at 10x speed."""
    model = f'[line.model]\nbundle = "{bundle}"\n' if bundle is not None else ""
    return f"""
[[line]]
name = "{name}"
{model}
[line.detection]
fusion = "vae-or-spc"
state_max_age_s = 0.0

[line.learning]
period_s = 20.0
min_rows = 40

[[line.plc]]
name = "{name}-plc"
protocol = "modbus-tcp"
host = "127.0.0.1"
port = {port}
unit = 1
poll_interval_s = {1.0 / SPEEDUP}
timeout_s = {0.5 / SPEEDUP}
max_backoff_s = {5.0 / SPEEDUP}
tag_map = "{TAG_MAP}"
"""


def two_line_site(
    tmp_path: Path, ports: list[int], opcua_port: int, bundles: list[Path | None]
) -> tuple[Path, SiteConfig]:
    """The site file of two lines, and its config with the demo's SCADA server (`viewer`)."""
    state = tmp_path / "state"
    path = tmp_path / "site.toml"
    tables = "".join(line_table(n, p, b) for n, p, b in zip(LINES, ports, bundles, strict=True))
    path.write_text(
        f'[journal]\npath = "{state / "events.sqlite"}"\n[opcua]\nallow_anonymous = true\n' + tables
    )
    config = load_config(path)
    return path, dataclasses.replace(config, opcua=demo_opcua(state, opcua_port, SCADA_PASSWORD))


def models_in_stores(
    bundle_dir: Path, tmp_path: Path, versions: list[int]
) -> tuple[list[Path], Callable[[str, int], None]]:
    """The first lines' own model stores under the state directory, model `versions[i]`
    installed in line i's; the `current` link of each, and how to install another version
    into a line's store (signed with the same key)."""
    key, trust, _ = make_keys(tmp_path)
    files = tmp_path / "files"
    files.mkdir()
    stores = {line: tmp_path / "state" / "lines" / line for line in LINES}
    for line, version in zip(LINES, versions, strict=False):
        installed_store(stores[line], signed(bundle_dir, key, files, version), trust)

    def install(line: str, version: int) -> None:
        install_file(signed(bundle_dir, key, files, version), ModelStore(stores[line]), trust)

    return [stores[line] / "models" / "current" for line in LINES[: len(versions)]], install


async def read(client: Client, ns: int, path: str) -> object:
    return await client.get_node(f"ns={ns};s={path}").read_value()


async def _reads(client: Client, ns: int, path: str, value: object) -> bool:
    return await read(client, ns, path) == value


async def test_two_lines_run_with_their_own_models_and_alarms(
    bundle_dir: Path, tmp_path: Path
) -> None:
    ports, opcua_port = [free_port(), free_port()], free_port()
    bundles, install = models_in_stores(bundle_dir, tmp_path, versions=[3, 4])
    _, config = two_line_site(tmp_path, ports, opcua_port, list(bundles))
    processes = [ExtrusionLine(seed=21), ExtrusionLine(seed=22)]
    plcs = [
        SimulatedPlc(p, port=port, period_s=1.0 / SPEEDUP)
        for p, port in zip(processes, ports, strict=True)
    ]
    for plc in plcs:
        await plc.start()
    plc_tasks = [asyncio.create_task(plc.run()) for plc in plcs]
    run = AgentRun(config)
    agent = run.agent
    results: dict[str, list[bool]] = {line: [] for line in LINES}
    for runner in agent.lines:
        runner.listeners.append(lambda r, n=runner.name: results[n].append(r.anomaly_active))
    client = await viewer_client(config.opcua, tmp_path / "scada", SCADA_PASSWORD)
    try:
        await run.started(timeout=20)
        one, two = agent.lines
        assert (one.name, two.name) == LINES
        assert one.monitor is not two.monitor and one.updates is not two.updates
        assert (one.model_version, two.model_version) == ("3", "4")
        await client.connect()
        ns = await client.get_namespace_index("urn:lineside")
        for line, version in zip(LINES, ("3 (v3)", "4 (v4)"), strict=True):
            assert await read(client, ns, f"Lines/{line}/ModelVersion") == version
        # Both lines poll, publish their own values and, once the window is full, scores.
        await wait_for(lambda: all(r.monitor.last_score is not None for r in agent.lines), 20)

        async def both_scored() -> bool:
            values = [await read(client, ns, f"Lines/{ln}/AnomalyScore") for ln in LINES]
            return all(isinstance(v, float) for v in values)

        await eventually(both_scored, 10)
        for line in LINES:
            pressure = await read(client, ns, f"Lines/{line}/Signals/melt_pressure/Value")
            assert isinstance(pressure, float) and 150.0 < pressure < 210.0
        status = agent.status()
        assert "lines extruder-1 model 3" in status and "extruder-2 model 4" in status
        assert "extruder-1-plc/" in status and "extruder-2-plc/" in status

        # A step on line 2's PLC: line 2's anomaly alarm, never line 1's.
        processes[1].inject(Fault(FaultKind.STEP, "melt_pressure", 8.0))

        async def line_two_alarmed() -> bool:
            return bool(await read(client, ns, "Lines/extruder-2/AnomalyActive"))

        await eventually(line_two_alarmed, 30 / SPEEDUP + 5)
        await asyncio.sleep(1.0)  # line 1 keeps running normally meanwhile
        assert await read(client, ns, "Lines/extruder-1/AnomalyActive") is False
        assert any(results["extruder-2"]) and not any(results["extruder-1"])
        await asyncio.sleep(0.5)  # the journal commits at least every 250 ms
        raised = [
            e for e in read_events(config.journal_path)
            if e["kind"] == "anomaly" and e["state"] == "raised"
        ]  # fmt: skip
        assert raised and {e["line"] for e in raised} == {"extruder-2"}
        assert {e["model_version"] for e in raised} == {"4"}

        # The heartbeat, and so `lineside health`, names both lines.
        beat = runtime_dir(config.state_dir) / HEARTBEAT_NAME
        await wait_for(beat.exists, 5)
        state = json.loads(beat.read_text())
        assert set(state["lines"]) == set(LINES)
        code, reason = health(beat, 30.0)
        assert code == 0 and "lines: extruder-1 model 3" in reason

        # A new model in line 1's store swaps line 1's model only.
        processes[1].clear()
        one.updates.poll_s = 0.1
        await asyncio.to_thread(install, "extruder-1", 5)
        await wait_for(lambda: one.model_version == "5", 20)
        version_one = "Lines/extruder-1/ModelVersion"
        await eventually(lambda: _reads(client, ns, version_one, "5 (v5)"), 5)
        assert two.model_version == "4" and two.updates.swaps == 0
        assert await read(client, ns, "Lines/extruder-2/ModelVersion") == "4 (v4)"
    finally:
        await client.disconnect()
        await run.stop()
        for task in plc_tasks:
            task.cancel()
        await asyncio.gather(*plc_tasks, return_exceptions=True)
        for plc in plcs:
            await plc.stop()
    # Each line kept its own detector snapshot.
    assert {p.name for p in config.state_dir.glob("detector-state.*.json")} == {
        f"detector-state.{line}.json" for line in LINES
    }


async def test_a_first_model_for_one_commissioning_line(bundle_dir: Path, tmp_path: Path) -> None:
    ports, opcua_port = [free_port(), free_port()], free_port()
    (line_one,), _ = models_in_stores(bundle_dir, tmp_path, versions=[1])
    path, config = two_line_site(tmp_path, ports, opcua_port, [line_one, None])
    plcs = [
        SimulatedPlc(ExtrusionLine(seed=30 + i), port=port, period_s=1.0 / SPEEDUP)
        for i, port in enumerate(ports)
    ]
    for plc in plcs:
        await plc.start()
    plc_tasks = [asyncio.create_task(plc.run()) for plc in plcs]
    run = AgentRun(config)
    try:
        await run.started(timeout=20)
        one, two = run.agent.lines
        assert one.commissioning is None and two.commissioning is not None
        assert "extruder-2 commissioning" in run.agent.status()
        # SIGHUP's reload retunes each line with its own [line.detection].
        path.write_text(path.read_text().replace("fusion = ", "raise_after = 6\nfusion = ", 1))
        edited = dataclasses.replace(load_config(path), opcua=config.opcua)
        plan = run.agent.reload(edited)
        assert plan.apply == ("line[0].detection.raise_after",) and not plan.restart
        assert one.monitor.detection.raise_after == 6
        assert two.monitor.detection.raise_after == 3
        # The CLI refuses to guess the line of a site with several ...
        key, _, trust_dir = make_keys(tmp_path, "cli-keys")
        (tmp_path / "cli-files").mkdir()
        bundle = signed(bundle_dir, key, tmp_path / "cli-files", 1)
        state = str(config.state_dir)
        install = [sys.executable, "-m", "agent", "bundle", "install", str(bundle)]
        install += ["--trust", str(trust_dir), "--config", str(path), "--state-dir", state]
        refused = await asyncio.to_thread(
            subprocess.run, install, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2
        assert "--line NAME" in refused.stderr and "extruder-1, extruder-2" in refused.stderr
        assert run.agent.model_arrived is None
        # ... and installs into the named line's own store, which ends this run for it.
        done = await asyncio.to_thread(
            subprocess.run, [*install, "--line", "extruder-2"], cwd=REPO,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        await asyncio.wait_for(run.task, timeout=15)
        assert run.agent.model_arrived_line == "extruder-2"
        assert run.agent.model_arrived == two.config.model_store / "models" / "current"
        again = on_first_model(config, run.agent.model_arrived, run.agent.model_arrived_line)
        assert [r.commissioning is None for r in again.lines] == [True, True]
        assert [r.config.bundle for r in again.lines] == [line_one, run.agent.model_arrived]
    finally:
        await run.stop()
        for task in plc_tasks:
            task.cancel()
        await asyncio.gather(*plc_tasks, return_exceptions=True)
        for plc in plcs:
            await plc.stop()
