"""The SQLite journal on a real file: batching, durability across a reopen, overflow policy."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from agent.sinks.journal import Journal, read_events
from agent.types import Event, EventKind, EventState


def event(i: int) -> Event:
    return Event(
        ts=1000.0 + i,
        line="l1",
        kind=EventKind.ANOMALY,
        state=EventState.RAISED,
        detector="vae",
        severity=700,
        message=f"event {i}",
        tag="melt_pressure",
        score=1.5,
        threshold=1.0,
        details={"i": i},
    )


async def test_events_are_committed_in_batches_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    journal = Journal(path, flush_interval_s=0.05)
    await journal.open()
    task = asyncio.create_task(journal.run())
    for i in range(20):
        assert journal.send(event(i))
    await asyncio.sleep(0.3)
    # committed while the writer still runs: another connection sees them
    assert len(read_events(path)) == 20
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await journal.aclose()
    rows = read_events(path)
    assert [r["message"] for r in rows] == [f"event {i}" for i in range(20)]
    assert rows[3]["details"] == {"i": 3}
    assert journal.stats.batches < 20  # batched, not one transaction per event
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


async def test_full_queue_refuses_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "e.sqlite", max_queue=5)
    accepted = [journal.send(event(i)) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert journal.stats.dropped == 3
    await journal.open()
    await journal.aclose()  # drains what was accepted
    assert len(read_events(tmp_path / "e.sqlite")) == 5


async def test_failed_write_keeps_the_batch_for_retry(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite"
    journal = Journal(path, flush_interval_s=0.05)
    await journal.open()
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    journal._db.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
    task = asyncio.create_task(journal.run())
    journal.send(event(1))
    await asyncio.sleep(0.3)
    assert journal.stats.write_errors >= 1 and journal.stats.written == 0
    blocker.rollback()
    blocker.close()
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await journal.aclose()
    assert journal.stats.written == 1
    assert [r["message"] for r in read_events(path)] == ["event 1"]
