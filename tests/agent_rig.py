"""The agent started for real, in-process or as a child: runs that record every line result, a
rig of agent + simulated PLC + signed model store, and `python -m agent` as a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.bundles.install import install_file
from agent.config import SiteConfig
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine
from agent.pipeline.line import LineResult
from agent.runtime.app import Agent
from agent.runtime.probation import ProbationPolicy
from tests.bundle_kit import installed_store, make_keys, signed
from tests.helpers import REPO, SCADA_PASSWORD, free_port, site_config, wait_for
from tests.scada_helpers import viewer_client


def spawn(args: list[str], env: dict[str, str], stderr: Any, prefix: tuple[str, ...] = ()) -> Any:
    """`python -m agent ARGS` as a child process (run from the repository, on its code)."""
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "agent", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


class AgentRun:
    """One run of an agent (by default a new one on `config`), every line result recorded
    with the monotonic time it came. Create it inside the event loop: it starts at once."""

    def __init__(self, config: SiteConfig, agent: Agent | None = None) -> None:
        self.agent = Agent(config) if agent is None else agent
        results: list[tuple[float, LineResult]] = []
        # The listener holds the list, not this run: no cycle keeps a stopped agent alive.
        self.agent.listeners.append(lambda r: results.append((time.monotonic(), r)))
        self.results = results
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self.agent.run(self.ready))

    async def started(self, timeout: float = 15) -> AgentRun:
        """This run, once the agent says it is ready."""
        await asyncio.wait_for(self.ready.wait(), timeout)
        return self

    async def stop(self) -> None:
        """A clean stop: cancel, as SIGTERM does, and let the drain finish."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def shift(self) -> list[bool]:
        """The shift detector's alarm flag of every result it scored."""
        return [r.shift_alarm_active for _, r in self.results if r.shift_score is not None]


class UpdateRig:
    """An agent and its simulated PLC on loopback, at `speedup` times real time, its model
    the `current` link of a store with model 1 of `bundle_dir` installed (signed with the
    rig's own key); probation is short (60 windows) and the store is polled every 0.1 s.

    `async with` starts the PLC, then the agent, and waits until the VAE has scored."""

    def __init__(self, bundle_dir: Path, tmp_path: Path, speedup: float = 10.0) -> None:
        self.key, self.trust, _ = make_keys(tmp_path)
        self.files = tmp_path / "files"
        self.files.mkdir()
        self.bundle_dir = bundle_dir
        self.scada_dir = tmp_path / "scada"
        self.store = installed_store(
            tmp_path / "state", signed(bundle_dir, self.key, self.files, 1), self.trust
        )
        plc_port, opcua_port = free_port(), free_port()
        self.config = site_config(self.store.current_link, tmp_path, plc_port, opcua_port, speedup)
        self.plc = SimulatedPlc(ExtrusionLine(seed=5), port=plc_port, period_s=1.0 / speedup)
        self.agent = Agent(self.config)
        self.agent.updates.policy = ProbationPolicy(windows=60, min_windows=20)
        self.agent.updates.poll_s = 0.1
        self.agent_run: AgentRun | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    @property
    def results(self) -> list[tuple[float, LineResult]]:
        """Every line result of the running agent, with the monotonic time it came."""
        assert self.agent_run is not None, "the rig is not running"
        return self.agent_run.results

    async def __aenter__(self) -> UpdateRig:
        await self.plc.start()
        plc_task = asyncio.create_task(self.plc.run())
        self.agent_run = AgentRun(self.config, self.agent)
        self.tasks = [plc_task, self.agent_run.task]
        await self.agent_run.started(timeout=10)
        await wait_for(lambda: self.agent.monitor.last_score is not None, timeout=15)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.plc.stop()

    async def install(self, version: int, edit: Any = None) -> None:
        """Sign model `version` of the bundle (with any manifest edit) and install it."""
        bundle = signed(self.bundle_dir, self.key, self.files, version, edit)
        await asyncio.to_thread(install_file, bundle, self.store, self.trust)

    async def model_tags(self) -> tuple[str, str]:
        """ModelVersion and ModelStatus as a SCADA client reads them (SignAndEncrypt, viewer)."""
        client = await viewer_client(self.config.opcua, self.scada_dir, SCADA_PASSWORD)
        await client.connect()
        try:
            ns = await client.get_namespace_index("urn:lineside")
            base = f"ns={ns};s=Lines/{self.config.line}"
            version = await client.get_node(f"{base}/ModelVersion").read_value()
            status = await client.get_node(f"{base}/ModelStatus").read_value()
            return str(version), str(status)
        finally:
            await client.disconnect()
