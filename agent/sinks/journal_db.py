"""The journal's SQLite file: schema, record kinds, rows, retention and queries.

One table, `events`, holds every kind of record so that one ordered query lists what happened
on a line: alarm edges (`anomaly`, `spc`, `comms`), operator acknowledgements (`ack`), LLM
explanations (`explanation`) and model changes (`model_change`). `ref` points an ack or an
explanation at the event it is about; `model_version` is the model that was running.

Everything here is synchronous and runs in the journal's own thread (or in `lineside events`).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import SiteConfig
from agent.config.reader import field_default
from agent.types import Event, EventKind

# Record kinds besides the alarm kinds of agent.types.EventKind ("anomaly", "spc", ...).
ACK = "ack"
EXPLANATION = "explanation"
MODEL_CHANGE = "model_change"
KINDS = (*(kind.value for kind in EventKind), ACK, EXPLANATION, MODEL_CHANGE)

COLUMNS = (
    "event_id", "ts", "line", "kind", "state", "detector", "severity", "tag", "score",
    "threshold", "message", "details", "ref", "model_version",
)  # fmt: skip
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
    details   TEXT NOT NULL,
    ref       TEXT NOT NULL DEFAULT '',
    model_version TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
INSERT = f"INSERT OR IGNORE INTO events ({','.join(COLUMNS)}) VALUES ({','.join('?' * 14)})"
Row = tuple[Any, ...]


def event_row(event: Event, model_version: str = "") -> Row:
    """The row of an alarm edge."""
    return (
        event.event_id, event.ts, event.line, event.kind.value, event.state.value,
        event.detector, event.severity, event.tag, event.score, event.threshold,
        event.message, json.dumps(event.details, sort_keys=True), "", model_version,
    )  # fmt: skip


def record_row(
    kind: str,
    line: str,
    message: str,
    details: dict[str, Any],
    *,
    ref: str = "",
    detector: str = "",
    model_version: str = "",
    ts: float | None = None,
    state: str = "",
) -> Row:
    """The row of a non-alarm record (ack, explanation, model change)."""
    if kind not in KINDS:
        raise ValueError(f"unknown journal record kind {kind!r}; known: {', '.join(KINDS)}")
    return (
        uuid.uuid4().hex, time.time() if ts is None else ts, line, kind, state, detector, 0, "",
        None, None, message, json.dumps(details, sort_keys=True), ref, model_version,
    )  # fmt: skip


def open_journal(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a journal database in WAL mode, upgrading an older schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        # Only takes effect on a new file: lets retention give disk space back.
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed event survives a power cut, not only a crash of the process.
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        have = {r[1] for r in db.execute("PRAGMA table_info(events)")}
        for column in ("ref", "model_version"):
            if column not in have:  # a journal written before these record kinds existed
                db.execute(f"ALTER TABLE events ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
    except BaseException:
        db.close()
        raise
    return db


def write_rows(db: sqlite3.Connection, rows: list[Row]) -> None:
    """Commit rows in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(INSERT, rows)
    except BaseException:
        if db.in_transaction:  # SQLITE_FULL and some I/O errors have rolled back already
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


DAY_S = 86400.0
MIB = 1 << 20


@dataclass(frozen=True)
class Retention:
    """Keep records at most `max_age_s` old and the live data under `max_bytes`; by default
    what the site config's `[journal]` defaults to."""

    max_age_s: float = field_default(SiteConfig, "journal_retention_days") * DAY_S
    max_bytes: int = int(field_default(SiteConfig, "journal_max_mb") * MIB)

    @classmethod
    def of(cls, retention_days: float, max_mb: float) -> Retention:
        """From `[journal] retention_days` and `max_mb`."""
        return cls(retention_days * DAY_S, int(max_mb * MIB))


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the database that hold data (free pages excluded)."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    size: int = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def prune(db: sqlite3.Connection, retention: Retention, now: float | None = None) -> int:
    """Delete records older than the age limit, then the oldest until under the size limit."""
    now = time.time() if now is None else now
    deleted = db.execute("DELETE FROM events WHERE ts < ?", (now - retention.max_age_s,)).rowcount
    while used_bytes(db) > retention.max_bytes:
        count = db.execute("SELECT count(*) FROM events").fetchone()[0]
        if count <= 1:  # the newest record stays, whatever the limit
            break
        # Oldest tenth at a time: fewer passes than one row at a time.
        chunk = max(1, count // 10)
        deleted += db.execute(
            "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events ORDER BY ts LIMIT ?)",
            (chunk,),
        ).rowcount
    if deleted:
        # sqlite3_exec steps it to the end; execute() would free a single page per call.
        db.executescript("PRAGMA incremental_vacuum;")
    return int(deleted)


def query(
    path: Path,
    *,
    since: float | None = None,
    until: float | None = None,
    kinds: Iterable[str] = (),
    line: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Records (oldest first) as dicts, filtered; opens the file read-only."""
    if not path.exists():
        raise FileNotFoundError(f"no journal at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts < ?")
            args.append(until)
        kinds = list(kinds)
        if kinds:
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            args.extend(kinds)
        if line is not None:
            where.append("line = ?")
            args.append(line)
        sql = "SELECT * FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is None:
            rows = db.execute(sql + " ORDER BY ts, rowid", args).fetchall()
        else:  # the newest `limit` records, still returned oldest first
            sql += " ORDER BY ts DESC, rowid DESC LIMIT ?"
            rows = db.execute(sql, [*args, limit]).fetchall()[::-1]
    finally:
        db.close()
    return [dict(r) | {"details": json.loads(r["details"])} for r in rows]
