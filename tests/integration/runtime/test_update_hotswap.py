"""Hot swap under load: a real agent polling the simulated PLC takes a new model from its store.

The site's model.bundle is the store's `current` link. Installing model 2 while the agent runs
makes it swap between two samples (no sample dropped, every sample still scored: the window is
kept), run model 2 on probation with model 1 in shadow, and pass. A model 2 whose threshold is
absurdly low alarms on almost every window: it fails probation and is rolled back on its own,
on disk too, with the reason in the audit log, the journal and the OPC-UA ModelVersion tag.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from agent.bundles.install import install_file
from agent.bundles.refusals import Refusal, UpdateRefused
from agent.bundles.store import ModelStore
from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine
from agent.pipeline.line import LineResult
from agent.runtime.app import Agent
from agent.runtime.probation import ProbationPolicy
from agent.sinks.journal import read_events
from tests.bundle_kit import installed_store, make_keys, signed
from tests.helpers import SCADA_PASSWORD, free_port, site_config, wait_for
from tests.scada_helpers import viewer_client

SPEEDUP = 10.0


class Running:
    """An agent and its simulated PLC on loopback, with every line result recorded."""

    def __init__(self, bundle_dir: Path, tmp_path: Path) -> None:
        self.key, self.trust, _ = make_keys(tmp_path)
        self.files = tmp_path / "files"
        self.files.mkdir()
        self.bundle_dir = bundle_dir
        self.scada_dir = tmp_path / "scada"
        self.store = installed_store(
            tmp_path / "state", signed(bundle_dir, self.key, self.files, 1), self.trust
        )
        plc_port, opcua_port = free_port(), free_port()
        self.config = site_config(self.store.current_link, tmp_path, plc_port, opcua_port, SPEEDUP)
        self.plc = SimulatedPlc(ExtrusionLine(seed=5), port=plc_port, period_s=1.0 / SPEEDUP)
        self.agent = Agent(self.config)
        self.agent.updates.policy = ProbationPolicy(windows=60, min_windows=20)
        self.agent.updates.poll_s = 0.1
        self.results: list[tuple[float, LineResult]] = []
        self.agent.listeners.append(lambda r: self.results.append((time.monotonic(), r)))
        self.tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Running:
        await self.plc.start()
        ready = asyncio.Event()
        self.tasks = [
            asyncio.create_task(self.plc.run()),
            asyncio.create_task(self.agent.run(ready)),
        ]
        await asyncio.wait_for(ready.wait(), 10)
        await wait_for(lambda: self.agent.monitor.last_score is not None, timeout=15)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.plc.stop()

    async def install(self, version: int, edit: Any = None) -> None:
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


async def test_swap_under_load_keeps_every_cycle_and_passes_probation(
    bundle_dir: Path, tmp_path: Path
) -> None:
    async with Running(bundle_dir, tmp_path) as run:
        updates = run.agent.updates
        old_vae = run.agent.monitor.vae.model
        old_shift = run.agent.monitor.shift
        await asyncio.sleep(0.5)
        before = len(run.results)
        await run.install(2)
        await wait_for(lambda: updates.swaps == 1, timeout=10)
        swapped_at = len(run.results)
        await wait_for(lambda: updates.state.status == "active" and updates.state.version == 2, 30)
        assert run.agent.monitor.vae.model is not old_vae
        assert run.agent.bundle.manifest.model_version == 2
        # the shift detector is the new bundle's too (agent.pipeline.detectors.shift)
        shift = run.agent.monitor.shift
        assert shift is not None and shift is not old_shift
        assert shift.params == run.agent.bundle.manifest.shift
        assert run.agent.sample_queue_drops == 0
        during = [r for _, r in run.results[before:]]
        # the window survives the swap: every sample around it is scored, none skipped
        assert all(r.score is not None for r in during), "a window was lost in the swap"
        gaps = [b - a for (a, _), (b, _) in zip(run.results, run.results[1:], strict=False)]
        assert max(gaps[swapped_at - 5 : swapped_at + 5]) < 1.0
        await wait_for(lambda: "passed" in updates.state.last_update, 5)
        assert await run.model_tags() == ("2 (v2)", "active")
        await wait_for(lambda: not run.store.marker_file.exists(), 5)  # passed: committed
        await asyncio.sleep(0.5)  # the journal commits every 250 ms
    events = [e for e in read_events(run.config.journal_path) if e["kind"] == "model_change"]
    messages = [e["message"] for e in events]
    assert any("model 2 swapped in" in m for m in messages)
    assert any("model 2 passed probation" in m for m in messages)
    assert run.store.current_version() == 2


async def test_model_that_fails_probation_is_rolled_back(bundle_dir: Path, tmp_path: Path) -> None:
    def alarm_always(manifest: dict[str, Any]) -> None:
        manifest["detector"]["threshold"] = 1e-6  # signed and golden-correct, but useless

    async with Running(bundle_dir, tmp_path) as run:
        updates = run.agent.updates
        old_vae = run.agent.monitor.vae.model
        await run.install(2, alarm_always)
        await wait_for(lambda: updates.swaps == 1, timeout=10)
        await wait_for(lambda: updates.state.status == "rolled-back", timeout=30)
        assert run.agent.monitor.vae.model is old_vae
        assert run.agent.bundle.manifest.model_version == 1
        assert "above threshold" in updates.state.last_update
        await wait_for(lambda: run.store.current_version() == 1, timeout=5)
        assert not run.store.marker_file.exists()
        assert run.agent.sample_queue_drops == 0
        await wait_for(lambda: True, 0.3)
        assert await run.model_tags() == ("1 (v1)", "rolled-back")
        await asyncio.sleep(0.5)
        # the failed version cannot come back: a fixed model needs a higher version
        try:
            await run.install(2)
        except UpdateRefused as exc:
            assert exc.reason is Refusal.DOWNGRADE
        else:
            raise AssertionError("a rolled-back version was accepted again")
    store = ModelStore(run.store.root)
    audit = [json.loads(line) for line in store.audit_file.read_text().splitlines()]
    rolled = [a for a in audit if a["action"] == "rolled-back"]
    assert rolled and rolled[0]["version"] == 2 and rolled[0]["to"] == 1
    assert "above threshold" in rolled[0]["reason"]
    events = [e for e in read_events(run.config.journal_path) if e["kind"] == "model_change"]
    assert any(e["state"] == "raised" and "rolled back" in e["message"] for e in events)
