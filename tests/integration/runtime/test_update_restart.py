"""An agent restarted while a new model is on probation resumes it; a crash loop goes back.

The installer leaves a probation marker; only a pass clears it. Each agent start counts one
boot: the first starts carry on with the probation (the previous model in shadow), and after
MAX_BOOTS starts that never passed, the agent goes back to the previous model before loading
the new one, as an A/B updater does with its boot counter.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.bundles.install import install_file
from agent.runtime.app import Agent
from agent.runtime.hotswap import MAX_BOOTS
from agent.runtime.probation import ProbationDetector
from tests.bundle_kit import installed_store, make_keys, signed
from tests.helpers import free_port, site_config


async def test_restart_during_probation_resumes_then_rolls_back(
    bundle_dir: Path, tmp_path: Path
) -> None:
    key, trust, _ = make_keys(tmp_path)
    files = tmp_path / "files"
    files.mkdir()
    store = installed_store(tmp_path / "state", signed(bundle_dir, key, files, 1), trust)
    assert not store.marker_file.exists()  # nothing to fall back to: no probation
    install_file(signed(bundle_dir, key, files, 2), store, trust)
    assert json.loads(store.marker_file.read_text())["version"] == 2
    config = site_config(store.current_link, tmp_path, free_port(), free_port())

    for boot in range(1, MAX_BOOTS + 1):
        agent = Agent(config)
        assert agent.bundle.manifest.model_version == 2
        probation = agent.updates.probation
        assert isinstance(probation, ProbationDetector) and agent.monitor.vae.model is probation
        assert agent.updates.state.status == "probation"
        assert json.loads(store.marker_file.read_text())["boots"] == boot

    agent = Agent(config)  # one start too many without a pass: back to model 1 first
    assert agent.bundle.manifest.model_version == 1
    assert store.current_version() == 1 and not store.marker_file.exists()
    assert agent.updates.probation is None
    audit = [json.loads(line) for line in store.audit_file.read_text().splitlines()]
    assert audit[-1]["action"] == "rolled-back" and audit[-1]["to"] == 1
    assert f"started {MAX_BOOTS + 1} times" in audit[-1]["reason"]
