"""Record kinds, retention, schema upgrade and `lineside events` on a real SQLite file."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli.events import parse_time
from agent.sinks.journal import Journal, Retention, read_events
from agent.sinks.journal_db import open_journal, prune, query, record_row, write_rows
from agent.types import Event, EventKind, EventState
from tests.helpers import REPO, wait_for


def alarm(ts: float, kind: EventKind = EventKind.ANOMALY, line: str = "l1") -> Event:
    return Event(
        ts=ts, line=line, kind=kind, state=EventState.RAISED, detector="vae", severity=700,
        message=f"alarm at {ts}", tag="melt_pressure", score=2.0, threshold=1.0,
    )  # fmt: skip


async def drain(journal: Journal) -> None:
    await journal.open()
    await journal.aclose()


async def test_every_record_kind_round_trips_with_its_reference(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path, line="l1")
    journal.model_version = "3"
    raised = alarm(time.time())
    assert journal.send(raised)
    assert journal.record_ack(raised.event_id, "alice", "checked the heater band")
    assert journal.record_explanation(raised.event_id, "Melt pressure rose 8 bar.", "qwen-0.5b")
    assert journal.record_model_change("3", "4", "USB bundle")
    await drain(journal)
    rows = read_events(path)
    assert [r["kind"] for r in rows] == ["anomaly", "ack", "explanation", "model_change"]
    alarm_row, ack, explanation, change = rows
    assert alarm_row["model_version"] == "3" and alarm_row["ref"] == ""
    assert ack["ref"] == raised.event_id and ack["details"]["user"] == "alice"
    assert explanation["ref"] == raised.event_id and explanation["details"]["model"] == "qwen-0.5b"
    assert change["details"] == {"from": "3", "to": "4", "reason": "USB bundle", "status": ""}
    assert journal.model_version == "4"  # later records carry the new model


def test_unknown_record_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown journal record kind 'note'"):
        record_row("note", "l1", "x", {})


def test_an_older_journal_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE events (event_id TEXT PRIMARY KEY, ts REAL NOT NULL, line TEXT NOT NULL,"
        " kind TEXT NOT NULL, state TEXT NOT NULL, detector TEXT NOT NULL, severity INTEGER"
        " NOT NULL, tag TEXT NOT NULL, score REAL, threshold REAL, message TEXT NOT NULL,"
        " details TEXT NOT NULL)"
    )
    old.execute("INSERT INTO events VALUES ('a', 1.0, 'l1', 'spc', 'raised', 'spc', 500, 't',"
                " NULL, NULL, 'old one', '{}')")  # fmt: skip
    old.commit()
    old.close()
    db = open_journal(path)
    write_rows(db, [record_row("ack", "l1", "ok", {}, ref="a", ts=2.0)])
    db.close()
    rows = query(path)
    assert [(r["message"], r["ref"]) for r in rows] == [("old one", ""), ("ok", "a")]


def test_retention_by_age_then_by_size(tmp_path: Path) -> None:
    db = open_journal(tmp_path / "r.sqlite")
    now = 1_000_000.0
    big = {"blob": "x" * 2000}
    rows = [record_row("explanation", "l1", f"r{i}", big, ts=now - 86400 * (30 - i))
            for i in range(30)]  # fmt: skip
    write_rows(db, rows)
    deleted = prune(db, Retention(max_age_s=86400 * 10.5, max_bytes=10**9), now=now)
    assert deleted == 20  # r0..r19 are older than 10.5 days
    left = [r[0] for r in db.execute("SELECT message FROM events ORDER BY ts")]
    assert left == [f"r{i}" for i in range(20, 30)]
    prune(db, Retention(max_age_s=1e9, max_bytes=8 * 4096), now=now)
    size_left = [r[0] for r in db.execute("SELECT message FROM events ORDER BY ts")]
    assert 0 < len(size_left) < 10 and size_left[-1] == "r29"  # oldest went first
    assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0  # space given back
    db.close()


async def test_a_failing_disk_is_logged_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "f.sqlite"
    journal = Journal(path, flush_interval_s=0.02, retry_interval_s=0.3)
    await journal.open()
    # A database that may not grow: SQLITE_FULL on the first batch larger than one page.
    journal._db.execute("PRAGMA max_page_count=4")  # type: ignore[union-attr]
    task = asyncio.create_task(journal.run())
    with caplog.at_level(logging.WARNING, logger="agent.sinks.journal"):
        for i in range(200):
            journal.send(alarm(1000.0 + i))
        await wait_for(lambda: not journal.stats.healthy, 5)
        assert "full" in journal.stats.last_error
        # The retry reopens the file without the page cap: as if space was freed.
        await wait_for(lambda: journal.stats.healthy, 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await journal.aclose()
    assert journal.stats.healthy and journal.stats.written == 200
    errors = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(errors) == 1 and any("writing again" in r.getMessage() for r in caplog.records)
    assert len(read_events(path)) == 200


def test_parse_time_forms_and_errors() -> None:
    assert parse_time("2h", "--since", now=10_000.0) == 10_000.0 - 7200
    assert parse_time("1700000000", "--since") == 1.7e9
    assert parse_time("2026-12-01T08:00:00", "--since") == parse_time(
        "2026-12-01T08:00:00+00:00", "--since"
    )
    with pytest.raises(Exception, match=r"--since: 'yesterday' is not a time \(fix: use e.g. 2h"):
        parse_time("yesterday", "--since")


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    path = tmp_path / "cli.sqlite"
    db = open_journal(path)
    write_rows(db, [
        record_row("ack", "l1", "first, with a comma", {"user": "a"}, ts=100.0),
        record_row("model_change", "l2", "second", {"to": "2"}, ts=200.0),
        record_row("explanation", "l1", "third\\nline", {"model": "m"}, ts=300.0),
    ])  # fmt: skip
    db.close()
    return path


def events(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "events", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_events_cli_exports_csv_and_json_with_filters(journal_file: Path, tmp_path: Path) -> None:
    out = events("--journal", str(journal_file), "--format", "csv", "--line", "l1")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["message"] for r in rows] == ["first, with a comma", "third\\nline"]
    assert rows[0]["time"].startswith("1970-01-01T00:01:40") and rows[0]["kind"] == "ack"
    target = tmp_path / "out.json"
    out = events("--journal", str(journal_file), "--format", "json", "--since", "150",
                 "--kind", "model_change", "-o", str(target))  # fmt: skip
    assert out.returncode == 0, out.stderr
    (only,) = json.loads(target.read_text())
    assert only["message"] == "second" and only["details"] == {"to": "2"}
    out = events("--journal", str(journal_file), "--limit", "1")
    assert out.returncode == 0 and out.stdout.count("\n") == 1 and "third" in out.stdout


def test_events_cli_bad_input_is_a_clear_error(journal_file: Path, tmp_path: Path) -> None:
    out = events("--journal", str(journal_file), "--since", "last tuesday")
    assert out.returncode == 2 and "--since: 'last tuesday' is not a time" in out.stderr
    out = events("--journal", str(tmp_path / "nope.sqlite"))
    assert out.returncode == 2 and "no journal at" in out.stderr and "fix:" in out.stderr
    out = events("--journal", str(journal_file), "--kind", "nonsense")
    assert out.returncode == 2 and "invalid choice" in out.stderr
