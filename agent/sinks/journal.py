"""A durable event journal in SQLite (WAL), written in batches off the hot path.

Overflow policy: the hot loop hands events over with `send`, which never blocks. When the
queue is full the new event is refused and counted in `stats.dropped`. A failed write (disk
full, read-only filesystem) keeps the batch and retries it every `flush_interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.types import Event

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id  TEXT PRIMARY KEY,
    ts        REAL NOT NULL,
    line      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    state     TEXT NOT NULL,
    detector  TEXT NOT NULL,
    severity  INTEGER NOT NULL,
    tag       TEXT NOT NULL,
    score     REAL,
    threshold REAL,
    message   TEXT NOT NULL,
    details   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
_INSERT = "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


@dataclass
class JournalStats:
    """What the journal wrote, refused and failed."""

    written: int = 0
    dropped: int = 0
    batches: int = 0
    write_errors: int = 0
    last_error: str = ""


def _row(event: Event) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.ts,
        event.line,
        event.kind.value,
        event.state.value,
        event.detector,
        event.severity,
        event.tag,
        event.score,
        event.threshold,
        event.message,
        json.dumps(event.details, sort_keys=True),
    )


def open_journal(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a journal database in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed event survives a power cut, not only a crash of the process.
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


class Journal:
    """The journal service: `send` from the hot loop, `run` as a task, `aclose` to drain."""

    def __init__(self, path: Path, *, max_queue: int = 10_000, flush_interval_s: float = 0.25):
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.stats = JournalStats()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._db: sqlite3.Connection | None = None
        self._pending: list[Event] = []

    async def open(self) -> None:
        """Open the database file (in the journal's own thread)."""
        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._executor, open_journal, self.path)

    def send(self, event: Event) -> bool:
        """Queue an event without blocking; False (and counted) if the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        return True

    def _write(self, batch: list[Event]) -> None:
        assert self._db is not None
        with self._db:  # one transaction per batch
            self._db.execute("BEGIN")
            self._db.executemany(_INSERT, [_row(e) for e in batch])

    async def _flush(self) -> None:
        while not self._queue.empty():
            self._pending.append(self._queue.get_nowait())
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._write, self._pending)
        except sqlite3.Error as exc:
            self.stats.write_errors += 1
            if self.stats.last_error != str(exc):
                log.error("journal %s: write failed (%s); keeping the batch", self.path, exc)
            self.stats.last_error = str(exc)
            return
        self.stats.written += len(self._pending)
        self.stats.batches += 1
        self.stats.last_error = ""
        self._pending = []

    async def run(self) -> None:
        """Commit whatever arrived, at least every `flush_interval_s`, until cancelled."""
        if self._db is None:
            await self.open()
        while True:
            if not self._pending:
                first = await self._queue.get()
                self._pending.append(first)
            await asyncio.sleep(self.flush_interval_s)
            await self._flush()

    async def aclose(self) -> None:
        """Write what is queued, then close the database."""
        if self._db is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flush())
            db, self._db = self._db, None
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)


def read_events(path: Path, since: float | None = None) -> list[dict[str, Any]]:
    """Every journaled event (oldest first), as dicts; `since` filters on the timestamp."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        query = "SELECT * FROM events"
        args: tuple[Any, ...] = ()
        if since is not None:
            query += " WHERE ts >= ?"
            args = (since,)
        rows = db.execute(query + " ORDER BY ts, rowid", args).fetchall()
    finally:
        db.close()
    return [dict(r) | {"details": json.loads(r["details"])} for r in rows]
