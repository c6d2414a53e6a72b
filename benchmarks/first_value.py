"""Day one: seconds from `lineside run` on a site with no model to the first Good value on OPC-UA.

    python benchmarks/first_value.py [--runs 5] [--poll 1.0]

Real processes on loopback: `lineside simulate` is the PLC, `lineside run --config SITE` the
agent, with a site that has no [model] (commissioning mode); this script is the SCADA client
(asyncua, no security: the benchmark's own site serves `security = "none"` on loopback). It
spawns the agent, then connects and reads Lines/<line>/Signals/melt_pressure/Value until its
status is Good. Printed: median and max over --runs of the seconds from spawn to the first
Good value, and to the agent's first connection being served (the OPC-UA port answering).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asyncua import Client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.demo.run import free_port  # noqa: E402
from agent.paths import firmware_configs  # noqa: E402

LINESIDE = [sys.executable, "-m", "agent"]
TAG = "melt_pressure"

SITE = """
[line]
name = "first-day"

[opcua]
endpoint = "opc.tcp://127.0.0.1:{opcua}/lineside"
security = "none"
allow_anonymous = true

[journal]
path = "{state}/events.sqlite"

[[plc]]
name = "plc-1"
host = "127.0.0.1"
port = {plc}
unit = 1
poll_interval_s = {poll}
timeout_s = {timeout}
tag_map = "{tag_map}"
"""


async def first_good(
    endpoint: str, node: str, started: float, deadline_s: float
) -> tuple[float, float]:
    """(seconds to the server answering, seconds to a Good value of `node`) since `started`."""
    served = None
    while time.monotonic() - started < deadline_s:
        client = Client(endpoint, timeout=2)
        try:
            await client.connect()
        except (OSError, TimeoutError):
            await asyncio.sleep(0.02)
            continue
        try:
            served = served or time.monotonic() - started
            ns = await client.get_namespace_index("urn:lineside")
            var = client.get_node(f"ns={ns};s={node}")
            while time.monotonic() - started < deadline_s:
                value = await var.read_data_value(raise_on_bad_status=False)
                if value.StatusCode.is_good():
                    return served, time.monotonic() - started
                await asyncio.sleep(0.02)
        finally:
            await client.disconnect()
    raise TimeoutError(f"no Good value of {node} within {deadline_s} s")


def one_run(work: Path, poll: float) -> tuple[float, float]:
    """Spawn simulator and agent, measure, stop both."""
    plc, opcua = free_port(), free_port()
    state = work / f"state-{plc}"
    state.mkdir()
    site = work / f"site-{plc}.toml"
    tag_map = firmware_configs() / "plc" / "simulated-extruder.toml"
    site.write_text(
        SITE.format(opcua=opcua, state=state, plc=plc, poll=poll, timeout=poll / 2, tag_map=tag_map)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sim = subprocess.Popen(
        [*LINESIDE, "simulate", "--port", str(plc)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # the PLC is up before the agent starts, as on a line
    started = time.monotonic()
    agent = subprocess.Popen(
        [*LINESIDE, "run", "--config", str(site)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        endpoint = f"opc.tcp://127.0.0.1:{opcua}/lineside"
        node = f"Lines/first-day/Signals/{TAG}/Value"
        return asyncio.run(first_good(endpoint, node, started, 60.0))
    finally:
        for proc in (agent, sim):
            proc.terminate()
            proc.wait(timeout=20)


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--poll", type=float, default=1.0, help="the PLC's poll_interval_s")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(Path(tmp), args.poll) for _ in range(args.runs)]
    served = [r[0] for r in runs]
    good = [r[1] for r in runs]
    print(f"lineside run (no model) -> OPC-UA, poll_interval_s {args.poll:g}, {args.runs} runs")
    print(f"{'from spawn to':<40}{'median s':>10}{'max s':>10}")
    print(
        f"{'the OPC-UA server answering':<40}{statistics.median(served):>10.2f}{max(served):>10.2f}"
    )
    print(
        f"{'the first Good value of ' + TAG:<40}{statistics.median(good):>10.2f}{max(good):>10.2f}"
    )


if __name__ == "__main__":
    main()
