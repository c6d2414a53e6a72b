"""`lineside events --local`: the machine's time zone with its offset; UTC stays the default."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.sinks.journal_db import open_journal, record_row, write_rows
from tests.helpers import REPO

# POSIX TZ strings need no tz database: "LST-05:30" is 5 h 30 min east of UTC, "WST+03" 3 h west.
EAST, WEST = "LST-05:30", "WST+03"
TS = 1_767_268_800.25  # 2026-01-01T12:00:00.250Z


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "events.sqlite"
    db = open_journal(path)
    write_rows(db, [
        record_row("ack", "l1", "before", {}, ts=TS - 3600),
        record_row("ack", "l1", "noon", {"user": "a"}, ts=TS),
    ])  # fmt: skip
    db.close()
    return path


def events(tz: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TZ": tz}
    return subprocess.run(
        [sys.executable, "-m", "agent", "events", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_default_is_utc_whatever_the_machine_zone(journal: Path) -> None:
    out = events(EAST, "--journal", str(journal), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [r["time"] for r in json.loads(out.stdout)] == [
        "2026-01-01T11:00:00.250+00:00",
        "2026-01-01T12:00:00.250+00:00",
    ]


@pytest.mark.parametrize(
    ("tz", "noon"),
    [(EAST, "2026-01-01T17:30:00.250+05:30"), (WEST, "2026-01-01T09:00:00.250-03:00")],
)
def test_local_prints_the_zone_offset_in_every_format(journal: Path, tz: str, noon: str) -> None:
    table = events(tz, "--journal", str(journal), "--local")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].startswith(f"{noon}  l1")
    rows = list(csv.DictReader(io.StringIO(
        events(tz, "--journal", str(journal), "--local", "--format", "csv").stdout
    )))  # fmt: skip
    assert rows[1]["time"] == noon and rows[1]["message"] == "noon"
    as_json = json.loads(
        events(tz, "--journal", str(journal), "--local", "--format", "json").stdout
    )
    assert as_json[1]["time"] == noon


def test_local_reads_a_time_without_offset_as_local(journal: Path) -> None:
    # 17:00 local in the east zone is 11:30 UTC: only the noon record is later.
    local = events(EAST, "--journal", str(journal), "--local", "--since", "2026-01-01T17:00")
    assert local.returncode == 0, local.stderr
    assert [line.split()[-1] for line in local.stdout.splitlines()] == ["noon"]
    # Without --local the same text is UTC: 17:00 UTC is after both records.
    utc = events(EAST, "--journal", str(journal), "--since", "2026-01-01T17:00")
    assert utc.returncode == 0 and utc.stdout == ""
    # An explicit offset wins either way.
    both = events(EAST, "--journal", str(journal), "--local", "--since", "2026-01-01T10:00+00:00")
    assert [line.split()[-1] for line in both.stdout.splitlines()] == ["before", "noon"]
