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
from pathlib import Path
from typing import Any

from agent.bundles.refusals import Refusal, UpdateRefused
from agent.bundles.store import ModelStore
from agent.sinks.journal import read_events
from tests.agent_rig import UpdateRig
from tests.helpers import wait_for


async def test_swap_under_load_keeps_every_cycle_and_passes_probation(
    bundle_dir: Path, tmp_path: Path
) -> None:
    async with UpdateRig(bundle_dir, tmp_path) as run:
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

    async with UpdateRig(bundle_dir, tmp_path) as run:
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
