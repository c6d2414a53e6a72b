"""The recorder's files in a real directory: the format the export reads, rotation by size,
time and tag set, the size bound, fsync, and whole rows after a failed write."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from agent.core.tabular import read_csv, recording_order
from agent.sinks.recording_file import (
    MIB,
    FileSummary,
    RecordingWriter,
    header,
    iso_utc,
    recordings,
)
from agent.types import Quality
from tests.recording_helpers import T0, FillingDisk, sample, settings

TAGS = ("speed", "temp", "flow")


def test_the_header_names_each_tag_then_each_quality() -> None:
    assert header(TAGS) == ("timestamp,speed,temp,flow,quality:speed,quality:temp,quality:flow\n")
    assert iso_utc(T0) == "2025-03-04T05:06:07.250Z"


def test_rows_merge_the_sources_and_leave_values_empty_unless_good(tmp_path: Path) -> None:
    writer = RecordingWriter(settings(tmp_path), "line 1/a", TAGS)
    writer.write(
        [
            sample(T0, "plc-a", speed=12.5),  # temp and flow not read yet
            sample(T0 + 0.5, "plc-b", temp=71.25, flow=Quality.BAD),
            sample(T0 + 1.0, "plc-a", speed=Quality.UNCERTAIN),
        ]
    )
    writer.close()
    assert writer.complete_rows == 0  # each row has a tag that is not good
    (path,) = recordings(tmp_path, "line 1/a")
    assert path.name == "line_1_a-20250304T050607Z.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == header(TAGS).strip()
    assert lines[1:] == [
        "2025-03-04T05:06:07.250Z,12.5,,,good,bad,bad",
        "2025-03-04T05:06:07.750Z,12.5,71.25,,good,good,bad",
        "2025-03-04T05:06:08.250Z,,71.25,,uncertain,good,bad",
    ]
    table = read_csv(path)
    assert table.columns == list(TAGS)  # quality columns are not features
    assert table.values[1, :2].tolist() == [12.5, 71.25]
    assert np.isnan(table.values[:, 2]).all() and math.isnan(table.values[2, 0])


def test_a_float_is_written_so_it_reads_back_exactly(tmp_path: Path) -> None:
    values = [0.1 + 0.2, 1e-300, 123456789.123456789, -0.0]
    writer = RecordingWriter(settings(tmp_path), "l", ["v"])
    writer.write([sample(T0 + i, v=v) for i, v in enumerate(values)])
    writer.close()
    assert read_csv(recordings(tmp_path, "l")[0]).column("v").tolist() == values
    assert writer.complete_rows == 4


def test_files_rotate_by_sample_time_each_with_its_header(tmp_path: Path) -> None:
    closed: list[FileSummary] = []
    writer = RecordingWriter(settings(tmp_path, rotate_s=10.0), "l", TAGS, on_closed=closed.append)
    writer.write([sample(T0 + i, speed=float(i)) for i in range(25)])
    writer.close()
    files = recordings(tmp_path, "l")
    assert [f.name for f in files] == [
        "l-20250304T050607Z.csv", "l-20250304T050617Z.csv", "l-20250304T050627Z.csv",
    ]  # fmt: skip
    assert [s.rows for s in closed] == [10, 10, 5]
    assert [s.path for s in closed] == files
    speeds = [v for f in files for v in read_csv(f).column("speed").tolist()]
    assert speeds == [float(i) for i in range(25)]  # nothing lost or doubled
    assert all(f.read_text().startswith("timestamp,") for f in files)
    assert sum(s.size for s in closed) == writer.written_bytes
    assert writer.written_rows == 25 and writer.files == 3


def test_files_rotate_by_size_and_a_taken_name_gets_a_number(tmp_path: Path) -> None:
    rotate_mb = 400 / MIB  # about 5 rows of 3 tags a file
    writer = RecordingWriter(settings(tmp_path, rotate_mb=rotate_mb), "l", TAGS)
    writer.write([sample(T0 + i * 0.01, speed=i, temp=i, flow=i) for i in range(30)])
    writer.close()
    files = recordings(tmp_path, "l")
    assert len(files) >= 5
    assert all(f.stat().st_size <= 400 for f in files)
    assert files[1].name == "l-20250304T050607Z-1.csv"  # the same second: numbered, in order
    flows = [v for f in files for v in read_csv(f).column("flow").tolist()]
    assert flows == [float(i) for i in range(30)]


def test_recording_order_sorts_numbered_names_after_the_plain_one() -> None:
    names = ["l-20250304T050608Z.csv", "l-20250304T050607Z-1.csv", "l-20250304T050607Z.csv"]
    assert sorted(names, key=recording_order) == [names[2], names[1], names[0]]


def test_the_oldest_files_go_so_the_total_stays_under_max_mb(tmp_path: Path) -> None:
    other = tmp_path / "other-line-20200101T000000Z.csv"
    other.write_text("timestamp,x\n")  # another line's recording: never ours to delete
    config = settings(tmp_path, rotate_mb=1000 / MIB, max_mb=3000 / MIB, rotate_s=5.0)
    writer = RecordingWriter(config, "l", TAGS)
    for i in range(200):
        writer.write([sample(T0 + i, speed=i, temp=i, flow=i)])
        total = sum(f.stat().st_size for f in recordings(tmp_path, "l"))
        assert total <= 3000
    writer.close()
    files = recordings(tmp_path, "l")
    assert writer.removed and all(not p.exists() for p in writer.removed)
    assert writer.removed == sorted(writer.removed, key=lambda p: recording_order(p.name))
    assert read_csv(files[-1]).column("speed")[-1] == 199.0  # the newest rows are kept
    assert other.exists()


def test_a_new_tag_set_starts_a_new_file_with_its_header(tmp_path: Path) -> None:
    writer = RecordingWriter(settings(tmp_path), "l", ["a"])
    writer.write([sample(T0, a=1.0, b=2.0)])
    writer.retag(["a", "b"])
    writer.write([sample(T0 + 1, a=3.0, b=4.0)])
    writer.retag(["a", "b"])  # the same set: no new file
    writer.write([sample(T0 + 2, a=5.0, b=6.0)])
    writer.close()
    first, second = recordings(tmp_path, "l")
    assert read_csv(first).columns == ["a"]
    assert read_csv(second).columns == ["a", "b"]
    assert read_csv(second).values.tolist() == [[3.0, 4.0], [5.0, 6.0]]


def test_fsync_every_fsync_s_and_at_close(tmp_path: Path) -> None:
    now = [0.0]
    disk = FillingDisk()
    writer = RecordingWriter(settings(tmp_path, fsync_s=1.0), "l", TAGS, disk, clock=lambda: now[0])
    writer.write([sample(T0, speed=1.0)])
    assert disk.fsyncs == 0 and writer.sync_due is False
    now[0] = 1.5
    assert writer.sync_due
    writer.write([sample(T0 + 1, speed=2.0)])
    assert disk.fsyncs == 1 and not writer.sync_due
    writer.write([sample(T0 + 2, speed=3.0)])
    assert disk.fsyncs == 1  # less than fsync_s since the last one
    writer.close()
    assert disk.fsyncs == 2


def test_a_full_disk_leaves_only_whole_rows(tmp_path: Path) -> None:
    disk = FillingDisk(space=300)
    writer = RecordingWriter(settings(tmp_path), "l", TAGS, disk)
    with pytest.raises(OSError, match="No space left"):
        for i in range(20):
            writer.write([sample(T0 + i, speed=i, temp=i, flow=i)])
    assert writer.current is None  # the file is dropped; the next row opens a new one
    (path,) = recordings(tmp_path, "l")
    text = path.read_text()
    assert text.endswith("\n") and len(text) <= 300
    table = read_csv(path)  # every row whole: it reads
    assert table.column("speed").tolist() == [float(i) for i in range(len(table.lines))]
    disk.full, disk.space = False, None
    writer.write([sample(T0 + 30, speed=30.0)])
    writer.close()
    assert len(recordings(tmp_path, "l")) == 2


def test_a_disk_full_before_the_header_leaves_no_empty_file(tmp_path: Path) -> None:
    disk = FillingDisk(space=0)
    writer = RecordingWriter(settings(tmp_path), "l", TAGS, disk)
    with pytest.raises(OSError):
        writer.write([sample(T0, speed=1.0)])
    assert recordings(tmp_path, "l") == []
