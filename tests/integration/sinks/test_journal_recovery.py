"""The journal after a failing disk: it probes on its retry timer, writes a backlog in chunks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.sinks.journal import Journal, read_events
from tests.helpers import wait_for
from tests.integration.sinks.test_journal_records import alarm


async def test_with_nothing_to_write_the_retry_timer_probes_the_disk(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    journal = Journal(blocker / "events.sqlite", flush_interval_s=0.02, retry_interval_s=0.3)
    assert not await journal.open()
    assert not journal.stats.healthy and journal.stats.last_error
    task = asyncio.create_task(journal.run())
    try:
        await asyncio.sleep(0.7)  # two retry intervals: still failing, probed again
        assert not journal.stats.healthy and journal.stats.write_errors >= 2
        blocker.unlink()  # the disk is usable again; no record arrives to prove it
        await wait_for(lambda: journal.stats.healthy, 5)
        assert journal.stats.last_error == "" and journal.stats.written == 0
        assert not list(blocker.glob(".*.probe"))  # the probe file is gone again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.aclose()
    assert (blocker / "events.sqlite").exists()


async def test_a_backlog_larger_than_the_space_is_written_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    journal = Journal(path, flush_interval_s=0.02, retry_interval_s=0.3, chunk_rows=50)
    await journal.open()
    # Room for some chunks but not the whole backlog: SQLITE_FULL part way through.
    journal._db.execute("PRAGMA max_page_count=12")  # type: ignore[union-attr]
    for i in range(2000):
        journal.send(alarm(1000.0 + i))
    seen: list[int] = []
    task = asyncio.create_task(journal.run())
    try:
        await wait_for(lambda: not journal.stats.healthy or journal.stats.written == 2000, 10)
        seen.append(journal.stats.written)
        assert not journal.stats.healthy and "full" in journal.stats.last_error
        # The retry reopens the file without the page cap, as if space was freed.
        await wait_for(lambda: journal.stats.healthy, 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.aclose()
    assert 0 < seen[0] < 2000  # what fitted was committed before the disk filled
    assert journal.stats.written == 2000 and journal.stats.batches >= 2000 // 50
    events = read_events(path)
    assert len(events) == 2000 and len({e["event_id"] for e in events}) == 2000
    assert [e["ts"] for e in events] == [1000.0 + i for i in range(2000)]
