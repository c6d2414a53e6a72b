"""The journal's promises on a real file, in a real process: kill -9, SIGTERM, full disk, read-only.

The worker (tests/journal_worker.py) drives the real Journal the way the agent's
detection loop does and logs every id *after* its commit, so "committed" is what the journal
itself reported, not a guess.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO

WORKER = "tests.journal_worker"


def start_worker(db: Path, log: Path | str, *extra: str, user: int | None = None) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", WORKER, str(db), str(log), *extra],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        user=user,
    )


def committed_ids(log: Path) -> list[str]:
    """Complete lines only: a kill can cut the last one short."""
    text = log.read_text()
    lines = text.split("\n")
    return [ln for ln in lines[:-1] if len(ln) == 32]


def journal_ids(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {r[0] for r in con.execute("SELECT event_id FROM events")}
    finally:
        con.close()


def read_stats(proc: Any, until: float, want: Any) -> dict[str, Any]:
    """Stats lines from the worker until `want(stats)` holds; the last line read."""
    deadline = time.monotonic() + until
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        stats = json.loads(line)
        if want(stats):
            return stats
    raise AssertionError(f"condition not reached; last stats {stats}")


@pytest.mark.timeout(300)
def test_kill9_during_bursts_never_loses_a_committed_event(tmp_path: Path) -> None:
    db, log = tmp_path / "events.sqlite", tmp_path / "committed.log"
    rng = random.Random(9)
    kills = 12
    for _ in range(kills):
        worker = start_worker(db, log, "--rate", "10")
        read_stats(worker, 30, lambda s: s["written"] > 0)  # running and committing
        time.sleep(rng.uniform(0.0, 0.6))  # anywhere in the 250 ms commit cycle
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
        assert worker.returncode == -signal.SIGKILL
    ids = committed_ids(log)
    assert len(ids) > kills * 100
    stored = journal_ids(db)
    missing = [i for i in ids if i not in stored]
    assert missing == [], f"{len(missing)} of {len(ids)} committed events lost"


def test_sigterm_under_load_flushes_every_accepted_event(tmp_path: Path) -> None:
    db, log = tmp_path / "events.sqlite", tmp_path / "committed.log"
    worker = start_worker(db, log, "--rate", "10")
    read_stats(worker, 30, lambda s: s["written"] > 1000)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=20)
    drain_s = time.monotonic() - started
    final = json.loads(out.strip().splitlines()[-1])
    assert worker.returncode == 0, err
    assert final["exit"] and final["dropped"] == 0
    assert final["written"] == final["accepted"] == len(journal_ids(db))
    assert drain_s < 15.0  # within the agent's drain budget, far below TimeoutStopSec=20


def test_full_disk_stops_journaling_with_an_alarm_never_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite"
    worker = start_worker(
        db, os.devnull, "--rate", "2", "--fsize", "1048576", "--max-queue", "3000"
    )
    try:
        # At first a reopen checkpoints the WAL and frees room for a while; once the database
        # file itself reaches the limit, every retry fails.
        failing = read_stats(worker, 30, lambda s: not s["healthy"] and s["write_errors"] >= 8)
        assert failing["last_error"]
        later = read_stats(worker, 30, lambda s: s["ticks"] > failing["ticks"] + 300)
        assert not later["healthy"] and later["written"] == failing["written"]
        # The hot loop kept its pace: never stalled while the disk refused writes.
        assert later["max_gap"] < 1.0, later
        # Bounded memory: past the retry buffer and the queue, new events are refused, counted.
        full = read_stats(worker, 30, lambda s: s["dropped"] > 0)
        assert full["written"] < full["accepted"]
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "cannot write" in err and "detection continues" in err
    # Logged once per failure, not per retry: every further error line follows a recovery.
    assert err.count("cannot write") == err.count("writing again") + 1
    assert err.count("cannot write") < failing["write_errors"]
    stored = journal_ids(db)  # what was committed before the disk filled is intact
    assert 0 < len(stored) == json.loads(out.strip().splitlines()[-1])["written"]


def read_only(state: Path) -> list[str]:
    """A command prefix that runs a program with `state` read-only.

    As root, file modes do not stop writes, so the directory is bind-mounted read-only in a
    private mount namespace (the real EROFS); otherwise its mode is enough.
    """
    if os.getuid() != 0:
        for f in state.iterdir():
            f.chmod(0o444)
        state.chmod(0o555)
        return []
    setup = f"mount --bind {state} {state} && mount -o remount,bind,ro {state}"
    return ["unshare", "-m", "sh", "-c", f'{setup} && exec "$@"', "sh"]


def tiny_tmpfs(state: Path, size_kib: int) -> list[str]:
    """A command prefix that runs a program with a `size_kib` tmpfs mounted on `state`."""
    setup = f"mount -t tmpfs -o size={size_kib}k lineside-test {state}"
    return ["unshare", "-m", "sh", "-c", f'{setup} && exec "$@"', "sh"]


def start_wrapped(prefix: list[str], db: Path, *extra: str) -> Any:
    cmd = [
        sys.executable,
        "-m",
        WORKER,
        str(db),
        os.devnull,
        *extra,
    ]
    return subprocess.Popen(
        [*prefix, *cmd], cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def test_read_only_state_directory_alarms_and_the_loop_runs_on(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = state / "events.sqlite"
    sqlite3.connect(db).close()  # an existing journal on a filesystem gone read-only
    worker = start_wrapped(read_only(state), db, "--rate", "2")
    try:
        failing = read_stats(worker, 30, lambda s: not s["healthy"])
        later = read_stats(worker, 30, lambda s: s["ticks"] > failing["ticks"] + 300)
        assert later["written"] == 0 and later["write_errors"] >= 2
        assert later["max_gap"] < 1.0, later
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    state.chmod(0o755)
    assert worker.returncode == 0, err
    assert "cannot write" in err and "readonly" in err.lower(), err[-2000:]


@pytest.mark.skipif(
    os.getuid() != 0, reason="mounting a tmpfs needs root (RLIMIT_FSIZE test covers it)"
)
def test_a_really_full_filesystem_alarms_and_the_loop_runs_on(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    worker = start_wrapped(tiny_tmpfs(state, 512), state / "events.sqlite", "--rate", "5")
    try:
        failing = read_stats(worker, 30, lambda s: not s["healthy"] and s["write_errors"] >= 5)
        assert "full" in failing["last_error"] or "disk" in failing["last_error"], failing
        later = read_stats(worker, 30, lambda s: s["ticks"] > failing["ticks"] + 300)
        assert later["max_gap"] < 1.0 and later["written"] > 0
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
