"""The device side never imports torch, transformers or optimum: run the agent and look."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import REPO, free_port

WORKSTATION_ONLY = ("torch", "transformers", "optimum", "export")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from agent.runtime.app import Agent
    from agent.demo.run import demo_config
    from agent.demo.simulator.plc import SimulatedPlc
    from agent.demo.simulator.process import ExtrusionLine

    bundle, state = Path(sys.argv[1]), Path(sys.argv[2])
    plc_port, opcua_port = int(sys.argv[3]), int(sys.argv[4])

    async def main():
        plc = SimulatedPlc(ExtrusionLine(seed=1), port=plc_port, period_s=0.1)
        await plc.start()
        agent = Agent(demo_config(state, bundle, plc_port, opcua_port, 10.0))
        tasks = [asyncio.create_task(plc.run()), asyncio.create_task(agent.run())]
        while agent.monitor.last_score is None:  # the VAE has really scored a window
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plc.stop()
        return agent.scada.counters.samples_processed

    processed = asyncio.run(main())
    print(json.dumps({"processed": processed, "modules": sorted(sys.modules)}))
    """
)


def test_running_agent_never_imports_workstation_packages(bundle_dir: Path, tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(bundle_dir),
            str(tmp_path),
            str(free_port()),
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["processed"] >= 32  # a full window went through the detection loop
    modules = set(report["modules"])
    assert {"onnxruntime", "asyncua", "pymodbus"} <= modules  # it really ran the device stack
    leaked = sorted(m for m in modules if m.split(".")[0] in WORKSTATION_ONLY)
    assert leaked == []


def test_agent_sources_have_no_workstation_imports() -> None:
    offenders = []
    for path in (REPO / "agent").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            words = line.split()
            imported = words[1].split(".")[0] if len(words) >= 2 else ""
            if words and words[0] in ("import", "from") and imported in WORKSTATION_ONLY:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
