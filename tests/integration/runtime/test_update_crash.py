"""kill -9 the installer at every step and at random byte offsets: old or new, never a mix.

`lineside bundle install` runs in a child process with LINESIDE_CRASH_AT set, so it SIGKILLs
itself at a named step or after exactly N bytes written (the copy from the stick, then the
extraction). After each kill a fresh loader, the one the agent uses, must find model 1 or
model 2 current, complete and verified, a fresh agent must start on it (on probation if it
is the new one), and the next install must go through cleanly.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.bundles.bundle import load_bundle
from agent.bundles.install import CRASH_ENV, STEPS, install_file
from agent.bundles.store import ModelStore, load_verified
from agent.runtime.app import Agent
from tests.bundle_kit import signed
from tests.helpers import free_port, site_config

FLIP = STEPS.index("flipped")


def crash_install(kit: dict[str, Any], state: Path, spec: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, CRASH_ENV: spec}
    argv = [sys.executable, "-m", "agent", "bundle", "install", str(kit["v2"]),
            "--state-dir", str(state), "--trust", str(kit["trust_dir"])]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


async def start_agent(store: ModelStore) -> tuple[int, bool]:
    """A fresh agent on the store: which model it runs, and whether it is on probation."""
    agent = Agent(site_config(store.current_link, store.root, free_port(), free_port()))
    return agent.bundle.manifest.model_version, agent.updates.probation is not None


def check_after_kill(kit: dict[str, Any], state: Path, expect: int) -> None:
    store = ModelStore(state)
    bundle = load_bundle(store.current_link)  # exactly what Agent() does with model.bundle
    verified = load_verified(store.current_link, kit["trust"])
    assert bundle.manifest.model_version == verified.manifest.model_version == expect
    assert store.current_version() == expect
    # a fresh agent runs it; a new model it has not seen pass goes on probation first
    assert asyncio.run(start_agent(store)) == (expect, expect == 2)
    # the next install clears whatever the kill left and goes through
    v3 = signed(kit["bundle"], kit["key"], kit["files"], 3)
    install_file(v3, store, kit["trust"])
    assert store.current_version() == 3
    assert load_verified(store.current_link, kit["trust"]).manifest.model_version == 3
    assert list(store.staging.iterdir()) == []
    # an unproven model 2 (never passed probation) keeps model 1 as the fallback of model 3
    kept = {"1", "2", "3"} if expect == 2 else {"1", "3"}
    assert {p.name for p in store.versions.iterdir()} == kept
    assert store.highest() == 3


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_every_step(kit: dict[str, Any], tmp_path: Path, step: str) -> None:
    state = tmp_path / "state"
    shutil.copytree(kit["template"], state, symlinks=True)
    done = crash_install(kit, state, step)
    assert done.returncode == -signal.SIGKILL, done.stderr
    check_after_kill(kit, state, 2 if STEPS.index(step) >= FLIP else 1)


def test_kill_at_random_byte_offsets(kit: dict[str, Any], tmp_path: Path) -> None:
    rng = random.Random(7)
    total = kit["bytes"]
    offsets = sorted({0, 1, total - 1, *(rng.randrange(total) for _ in range(9))})
    for i, offset in enumerate(offsets):
        state = tmp_path / f"state-{i}"
        shutil.copytree(kit["template"], state, symlinks=True)
        done = crash_install(kit, state, f"bytes:{offset}")
        assert done.returncode == -signal.SIGKILL, (offset, done.stderr)
        check_after_kill(kit, state, 1)


def test_without_a_crash_the_child_installs(kit: dict[str, Any], tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(kit["template"], state, symlinks=True)
    done = crash_install(kit, state, "")
    assert done.returncode == 0, done.stderr
    assert "installed model 2" in done.stdout
    assert ModelStore(state).current_version() == 2
