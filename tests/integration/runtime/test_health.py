"""`lineside health`: where the heartbeat lives, and "cannot write" told from "stalled"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.ops import systemd
from tests.helpers import REPO


def _beat(path: Path, **extra: object) -> systemd.Heartbeat:
    beat = systemd.Heartbeat(path, extra=lambda: dict(extra))
    beat.beat()
    beat.write()
    return beat


def test_the_runtime_dir_is_ours_then_systemds_then_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, ours, systemds = tmp_path / "state", tmp_path / "ours", tmp_path / "systemd"
    for d in (state, ours, systemds):
        d.mkdir()
    monkeypatch.setenv(systemd.RUNTIME_DIR_ENV, str(ours))
    monkeypatch.setenv("RUNTIME_DIRECTORY", f"{systemds}:{tmp_path / 'other'}")
    assert systemd.runtime_dir(state) == ours
    monkeypatch.setenv(systemd.RUNTIME_DIR_ENV, str(tmp_path / "missing"))
    assert systemd.runtime_dir(state) == systemds
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "gone"))
    fallback = systemd.runtime_dir(state)
    assert fallback in (state, systemd.DEFAULT_RUNTIME_DIR)  # /run/lineside where it exists
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(systemd.RUNTIME_DIR_ENV, str(tmp_path / "a-file"))
    assert systemd.runtime_dir(state) == fallback
    files = systemd.heartbeat_files(state)
    assert files[-1] == state / systemd.HEARTBEAT_NAME


def test_health_codes_for_each_state_of_the_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    _beat(path, journal_ok=True)
    assert systemd.health(path, 30) == (systemd.HEALTH_OK, systemd.health(path, 30)[1])
    _beat(path, journal_ok=False, journal_error="OSError: [Errno 28] No space", state_dir="/s")
    code, reason = systemd.health(path, 30)
    assert code == systemd.HEALTH_CANNOT_WRITE
    assert reason.startswith("cannot write") and "No space" in reason and "/s" in reason
    code, reason = systemd.health(path, 30, now=time.time() + 60)  # stalled wins over the disk
    assert code == systemd.HEALTH_DEAD and "stalled" in reason
    for garbage in ("{", "[]", '{"loop_ts": "soon"}'):
        path.write_text(garbage)
        code, reason = systemd.health(path, 30)
        assert code == systemd.HEALTH_DEAD and "unreadable" in reason
    path.unlink()
    assert systemd.health(path, 30)[0] == systemd.HEALTH_DEAD
    assert set(systemd.HEALTH_CODES) == {0, 1, 3}


def _health(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    run = [sys.executable, "-m", "agent", "health", *args]
    return subprocess.run(
        run, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_the_command_finds_the_runtime_heartbeat_and_exits_by_code(tmp_path: Path) -> None:
    run_dir, state = tmp_path / "run", tmp_path / "state"
    run_dir.mkdir()
    state.mkdir()
    env = {systemd.RUNTIME_DIR_ENV: str(run_dir)}
    # A stale heartbeat in the state dir (an older agent's) is not read while ours is there.
    stale = systemd.Heartbeat(state / systemd.HEARTBEAT_NAME)
    stale.last_progress -= 3600  # its loop last moved an hour ago
    stale.write()
    _beat(run_dir / systemd.HEARTBEAT_NAME, journal_ok=False, journal_error="disk full")
    failing = _health(env, "--state-dir", str(state))
    assert failing.returncode == 3 and "cannot write" in failing.stderr
    alive = _health(env, "--state-dir", str(state), "--alive-only")
    assert alive.returncode == 0 and "disk full" in alive.stdout
    (run_dir / systemd.HEARTBEAT_NAME).unlink()
    old = _health(env, "--state-dir", str(state))  # falls back to the state dir's file
    assert old.returncode == 1 and "stalled" in old.stderr
    stale.remove()
    missing = _health(env, "--state-dir", str(state))
    assert missing.returncode == 1 and "no heartbeat" in missing.stderr
    helptext = _health({}, "--help")
    assert "3: alive, but its state directory cannot be written" in " ".join(
        helptext.stdout.split()
    )
