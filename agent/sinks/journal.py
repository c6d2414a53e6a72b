"""A durable event journal in SQLite (WAL), written in batches off the hot path.

Overflow policy: the hot loop hands records over with `send` / `record_*`, which never block.
When the queue is full a new record is refused and counted in `stats.dropped`.

Durability: a batch is one transaction with `synchronous=FULL`; once `on_commit` has been
called for a record (or `stats.written` counts it), a kill -9 or a power cut cannot lose it.
A batch's commit starts at most `flush_interval_s` (200 ms) after its oldest record was sent,
so a record is committed within 250 ms unless the commit itself takes over 50 ms (see
benchmarks/daemon.py for the measured delay).

Failures (disk full, read-only state directory, a file that cannot be opened): the journal
stops journaling, logs the reason once, sets `stats.healthy = False` (published to SCADA as
Agent/JournalOk) and retries every `retry_interval_s`, keeping at most `max_pending` records
for the retry; beyond that the queue fills and new records are dropped and counted. The
detection loop is never blocked by any of this. With nothing to write the retry timer still
probes the disk (opens the file, writes and syncs a small probe file beside it, takes the
write lock), so `healthy` turns true within one retry interval of space coming back, not at
the next alarm edge. A backlog is written `chunk_rows` records per transaction: when only
part of it fits, that part is committed and the rest waits for the next retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.ops.counters import CounterRegistry
from agent.sinks.journal_db import (
    ACK,
    EXPLANATION,
    MODEL_CHANGE,
    Retention,
    Row,
    event_row,
    open_journal,
    prune,
    query,
    record_row,
    write_rows,
)
from agent.types import Event, EventKind, EventState

log = logging.getLogger(__name__)

# What the disk probe writes and syncs beside the journal: a few pages, as a small commit would.
PROBE_BYTES = 16 * 1024

__all__ = ["Journal", "JournalStats", "Retention", "read_events"]


@dataclass
class JournalStats:
    """What the journal wrote, refused and failed; `healthy` is False while it cannot write."""

    written: int = 0
    dropped: int = 0
    batches: int = 0
    write_errors: int = 0
    pruned: int = 0
    last_error: str = ""
    healthy: bool = True
    last_commit_ms: float = 0.0


class Journal:
    """The journal service: `send` from the hot loop, `run` as a task, `aclose` to drain."""

    def __init__(
        self,
        path: Path,
        *,
        line: str = "",
        max_queue: int = 10_000,
        max_pending: int = 10_000,
        flush_interval_s: float = 0.2,
        retry_interval_s: float = 2.0,
        chunk_rows: int = 500,
        retention: Retention | None = None,
        prune_interval_s: float = 600.0,
        on_commit: Callable[[list[str]], None] | None = None,
        registry: CounterRegistry | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.model_version = ""
        #: Each line's running model, for the rows of a site of several lines.
        self.line_models: dict[str, str] = {}
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self.chunk_rows = max(1, chunk_rows)
        self.retention = retention or Retention()
        self.prune_interval_s = prune_interval_s
        self.on_commit = on_commit
        self.max_pending = max_pending
        self.stats = JournalStats()
        if registry is not None:
            registry.register("journal", self.stats)
        self._queue: asyncio.Queue[Row] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._db: sqlite3.Connection | None = None
        self._pending: list[Row] = []
        self._next_prune = 0.0
        self._retry_at = 0.0
        self._oldest: float | None = None  # when the oldest record still in the queue came
        self._arrived = asyncio.Event()

    # --- the hot side: never blocks ------------------------------------------------------

    def _put(self, row: Row) -> bool:
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        if self._oldest is None:
            self._oldest = time.monotonic()
            self._arrived.set()
        return True

    def send(self, event: Event) -> bool:
        """Queue an alarm edge without blocking; False (and counted) if the queue is full."""
        return self._put(event_row(event, self._model_of(event.line)))

    def _model_of(self, line: str) -> str:
        return self.line_models.get(line, self.model_version)

    def record_ack(self, event_id: str, user: str, note: str = "", line: str = "") -> bool:
        """Queue an operator's acknowledgement of the alarm `event_id`."""
        details = {"user": user, "note": note}
        message = f"{user} acknowledged {event_id}" + (f": {note}" if note else "")
        row = record_row(
            ACK, line or self.line, message, details, ref=event_id, detector="operator",
            model_version=self._model_of(line or self.line),
        )  # fmt: skip
        return self._put(row)

    def record_explanation(
        self,
        event_id: str,
        text: str,
        model: str,
        details: dict[str, Any] | None = None,
        line: str = "",
    ) -> bool:
        """Queue the explainer's text for the alarm `event_id`; `model` names the LLM."""
        line = line or self.line
        row = record_row(
            EXPLANATION, line, text, {"model": model, **(details or {})}, ref=event_id,
            detector=model, model_version=self._model_of(line),
        )  # fmt: skip
        return self._put(row)

    def record_model_change(
        self, old: str, new: str, reason: str, line: str = "", status: str = ""
    ) -> bool:
        """Queue a model swap (`old` -> `new` version), e.g. from a USB bundle or a rollback.

        `status` is the update's outcome (probation, active, rolled-back); a rollback is
        journaled in state `raised`, as an alarm would be.
        """
        if line and line != self.line:
            self.line_models[line] = new
        else:
            self.model_version = new
        details = {"from": old, "to": new, "reason": reason, "status": status}
        row = record_row(
            MODEL_CHANGE, line or self.line, f"model {old or '-'} -> {new}: {reason}",
            details, detector="updates", model_version=new,
            state="raised" if status == "rolled-back" else "",
        )  # fmt: skip
        return self._put(row)

    # --- the journal thread ---------------------------------------------------------------

    def _open(self) -> None:
        self._db = open_journal(self.path)
        self._prune_if_due()

    def _prune_if_due(self) -> None:
        now = time.monotonic()
        if self._db is None or now < self._next_prune:
            return
        self._next_prune = now + self.prune_interval_s
        deleted = prune(self._db, self.retention)
        if deleted:
            self.stats.pruned += deleted
            log.info("journal %s: retention removed %d old record(s)", self.path, deleted)

    def _write(self, batch: list[Row]) -> float:
        if self._db is None:
            self._open()
        assert self._db is not None
        started = time.perf_counter()
        write_rows(self._db, batch)
        elapsed = time.perf_counter() - started
        self._prune_if_due()
        return elapsed

    def _probe(self) -> None:
        """Raise if the journal cannot write now: open it, write and sync a probe file beside
        it, take SQLite's write lock."""
        if self._db is None:
            self._open()
        assert self._db is not None
        probe = self.path.with_name(f".{self.path.name}.probe")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"\0" * PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("ROLLBACK")

    def _recovered(self, kept: int) -> None:
        if not self.stats.healthy:
            log.warning("journal %s: writing again (%d record(s) kept)", self.path, kept)
            self.stats.healthy = True
            self.stats.last_error = ""

    async def _probe_when_due(self) -> None:
        """While failing with nothing to write: probe the disk on the retry timer."""
        await asyncio.sleep(max(0.0, self._retry_at - time.monotonic()))
        if self.stats.healthy or self._pending or not self._queue.empty():
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._probe)
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return
        self._recovered(0)

    def _failed(self, exc: BaseException) -> None:
        self.stats.write_errors += 1
        reason = f"{type(exc).__name__}: {exc}"
        if self.stats.healthy or self.stats.last_error != reason:
            log.error(
                "journal %s: cannot write (%s); journaling stopped, detection continues, "
                "retrying every %g s",
                self.path, reason, self.retry_interval_s,
            )  # fmt: skip
        self.stats.healthy = False
        self.stats.last_error = reason
        self._retry_at = time.monotonic() + self.retry_interval_s
        if self._db is not None and isinstance(exc, sqlite3.DatabaseError):
            # A read-only or vanished file may come back as a new one: reopen on retry.
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    async def open(self) -> bool:
        """Open the database file (in the journal's own thread); False (alarmed) if it fails."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._open)
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return False
        return True

    async def _flush(self) -> None:
        while len(self._pending) < self.max_pending and not self._queue.empty():
            self._pending.append(self._queue.get_nowait())
        # Records sent while this batch commits start the clock of the next one.
        self._oldest = None if self._queue.empty() else time.monotonic()
        if not self._pending or time.monotonic() < self._retry_at:
            return
        loop = asyncio.get_running_loop()
        written = 0
        while self._pending:
            batch = self._pending[: self.chunk_rows]
            try:
                elapsed = await loop.run_in_executor(self._executor, self._write, batch)
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
                return
            del self._pending[: len(batch)]
            self.stats.written += len(batch)
            self.stats.batches += 1
            self.stats.last_commit_ms = elapsed * 1e3
            written += len(batch)
            if self.on_commit is not None:
                try:
                    self.on_commit([r[0] for r in batch])
                except Exception:
                    log.exception("journal %s: on_commit callback failed", self.path)
        # Healthy again only once the whole backlog is in: a part that fitted is not recovery.
        self._recovered(written)

    async def run(self) -> None:
        """Commit whatever arrived, `flush_interval_s` after its oldest record, until cancelled."""
        while True:
            if not self._pending and self._queue.empty():
                if not self.stats.healthy:
                    await self._probe_when_due()
                    continue
                self._arrived.clear()
                await self._arrived.wait()
            now = time.monotonic()
            oldest = now if self._oldest is None else self._oldest
            delay = max(oldest + self.flush_interval_s, self._retry_at) - now
            await asyncio.sleep(max(0.0, delay))
            await self._flush()

    async def aclose(self) -> None:
        """Write what is queued (one last try, even while failing), then close the database."""
        self._retry_at = 0.0
        with contextlib.suppress(Exception):
            await asyncio.shield(self._flush())
        if self._pending or not self._queue.empty():
            lost = len(self._pending) + self._queue.qsize()
            log.error("journal %s: %d record(s) could not be written at exit", self.path, lost)
        db, self._db = self._db, None
        if db is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)


def read_events(path: Path, since: float | None = None) -> list[dict[str, Any]]:
    """Every journaled record (oldest first), as dicts; `since` filters on the timestamp."""
    return query(path, since=since)


def open_alarm_edges(path: Path, line: str) -> list[Event]:
    """The raise edge of every alarm of `line` the journal holds open: its last edge (per kind;
    per PLC device for comms) is a raise. Empty when there is no journal yet."""
    kinds = [k.value for k in ALARM_KINDS]
    try:
        rows = query(path, kinds=kinds, line=line)
    except FileNotFoundError:
        return []
    last: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        details = row["details"]
        key = (row["kind"], str(details.get("plc", "")), str(details.get("device", "")))
        last[key] = row
    return [_edge_of(r) for r in last.values() if r["state"] == EventState.RAISED.value]


ALARM_KINDS = (EventKind.ANOMALY, EventKind.SPC, EventKind.COMMS)


def _edge_of(row: dict[str, Any]) -> Event:
    return Event(
        ts=float(row["ts"]), line=str(row["line"]), kind=EventKind(row["kind"]),
        state=EventState(row["state"]), detector=str(row["detector"]),
        severity=int(row["severity"]), message=str(row["message"]), tag=str(row["tag"]),
        score=row["score"], threshold=row["threshold"], details=dict(row["details"]),
        event_id=str(row["event_id"]),
    )  # fmt: skip
