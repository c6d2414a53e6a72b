"""A state directory that really fills: `lineside run` in its own mount namespace with the state
directory on a 4 MiB tmpfs, the simulated PLC on loopback, a SCADA client on the agent's server.

Filling the tmpfs makes the journal fail (Agent/JournalOk false) while detection goes on
(Agent/SamplesProcessed keeps rising) and `lineside health` says "cannot write" (exit 3), not
dead; freeing it brings JournalOk back within a few retry intervals, and the agent writes again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from asyncua import Client

from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine
from agent.paths import firmware_configs
from tests.helpers import REPO, eventually, free_port

SITE = """
[line]
name = "full-disk"

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
poll_interval_s = 0.1
timeout_s = 0.05
tag_map = "{tag_map}"
"""


def in_namespace(pid: int, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command in the agent's mount namespace (where its tmpfs is)."""
    return subprocess.run(
        ["nsenter", f"--mount=/proc/{pid}/ns/mnt", *command],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip


async def test_a_full_state_directory_stops_the_journal_not_detection(tmp_path: Path) -> None:
    if os.geteuid() != 0 and shutil.which("unshare") is None:
        pytest.fail("needs unshare (util-linux) to mount a tmpfs in a mount namespace")
    plc_port, opcua = free_port(), free_port()
    state, runtime = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    runtime.mkdir()
    site = tmp_path / "site.toml"
    tag_map = firmware_configs() / "plc" / "simulated-extruder.toml"
    site.write_text(SITE.format(opcua=opcua, state=state, plc=plc_port, tag_map=tag_map))
    plc = SimulatedPlc(ExtrusionLine(seed=2), port=plc_port, period_s=0.1)
    await plc.start()
    plc_task = asyncio.create_task(plc.run())
    mount = f"mount -t tmpfs -o size=4m tmpfs {state}"
    run = f"exec {sys.executable} -m agent run --config {site}"
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "LINESIDE_RUNTIME_DIR": str(runtime)}
    agent = subprocess.Popen(
        ["unshare", *user, "--mount", "sh", "-c", f"{mount} && {run}"], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    clients: list[Client] = []
    health = [sys.executable, "-m", "agent", "health", "--state-dir", str(state)]

    async def connected() -> bool:
        client = Client(f"opc.tcp://127.0.0.1:{opcua}/lineside", timeout=5)
        try:
            await client.connect()
        except (OSError, TimeoutError):
            return False
        clients.append(client)
        return True

    try:
        await eventually(connected, timeout=40)
        client = clients[0]
        ns = await client.get_namespace_index("urn:lineside")

        async def read(name: str) -> object:
            return await client.get_node(f"ns={ns};s=Agent/{name}").read_value()

        async def journal_ok() -> bool:
            return bool(await read("JournalOk"))

        await eventually(journal_ok, timeout=10)
        pid = agent.pid
        filled = in_namespace(pid, "dd", "if=/dev/zero", f"of={state}/fill", "bs=64k")
        assert "No space left" in filled.stderr, filled.stderr
        # Alarm-free running journals little: make it write (a comms outage and its return).
        await plc.stop()
        await asyncio.sleep(1.0)
        await plc.start()

        async def journal_failing() -> bool:
            return not await read("JournalOk")

        await eventually(journal_failing, timeout=20)
        processed = int(await read("SamplesProcessed"))
        await asyncio.sleep(1.0)
        assert int(await read("SamplesProcessed")) > processed + 5  # detection goes on

        async def health_says(code: int, words: str) -> bool:
            judged = await asyncio.to_thread(
                subprocess.run, health, env=env, capture_output=True, text=True, check=False
            )
            return judged.returncode == code and words in judged.stdout + judged.stderr

        # The heartbeat is rewritten every 5 s: within two of them, health tells the truth.
        await eventually(lambda: health_says(3, "cannot write"), timeout=15)

        freed = in_namespace(pid, "rm", "-f", f"{state}/fill")
        assert freed.returncode == 0, freed.stderr
        await eventually(journal_ok, timeout=15)
        await eventually(lambda: health_says(0, "journal ok"), timeout=15)
    finally:
        for client in clients:
            await client.disconnect()
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
        plc_task.cancel()
        await asyncio.gather(plc_task, return_exceptions=True)
        await plc.stop()
    assert agent.returncode == 0, err[-3000:]
    assert "Traceback" not in err
