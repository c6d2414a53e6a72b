"""The export reads `lineside record` output: quality columns are not features, a row not good
is dropped and counted, a directory of recordings is one input in time order."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest

import agent.core.tabular as tabular
from agent.core.tabular import read_csv
from agent.errors import DataError
from agent.sinks.recording_file import RecordingWriter
from agent.types import Quality
from export.data import read_table, read_tables, recording_files
from export.errors import ExportError
from tests.recording_helpers import T0, sample, settings

HEADER = "timestamp,a,b,quality:a,quality:b\n"


def test_the_recording_order_example_runs() -> None:
    result = doctest.testmod(tabular)
    assert result.attempted > 0 and result.failed == 0


def test_a_value_whose_quality_is_not_good_reads_as_nan(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        HEADER
        + "2025-01-01T00:00:00.000Z,1.0,2.0,good,good\n"
        + "2025-01-01T00:00:01.000Z,3.0,4.0,uncertain,good\n"  # a value kept, but not good
        + "2025-01-01T00:00:02.000Z,5.0,6.0,GOOD,Good\n"
    )
    table = read_csv(path)
    assert table.columns == ["a", "b"] and table.not_good == 1
    assert np.isnan(table.values[1, 0]) and table.values[1, 1] == 4.0
    assert read_csv(path, ["b"]).not_good == 0  # only the columns in use count
    exported = read_table(path)
    assert (exported.rows, exported.dropped, exported.not_good) == (2, 1, 1)
    assert len(exported.segments) == 2  # no window spans the dropped row


def test_a_quality_column_cannot_be_picked_as_a_feature(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "2025-01-01T00:00:00.000Z,1,2,good,good\n")
    with pytest.raises(DataError, match="timestamp, label or quality column"):
        read_csv(path, ["quality:a"])


def test_a_csv_without_quality_columns_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("time,a,quality\n0,1.5,7\n1,,8\n")
    table = read_csv(path)
    assert table.columns == ["a", "quality"] and table.not_good == 0  # plain `quality`: a tag
    assert read_table(path).dropped == 1


def record(directory: Path, rows: list[tuple[float, float | Quality]], **kw: float) -> None:
    writer = RecordingWriter(settings(directory, **kw), "line", ["a", "b"])
    writer.write([sample(T0 + t, a=a, b=2.0 * t) for t, a in rows])
    writer.close()


def test_a_directory_of_recordings_is_one_input_in_time_order(tmp_path: Path) -> None:
    rows: list[tuple[float, float | Quality]] = [(t, float(t)) for t in range(30)]
    rows[12] = (12.0, Quality.BAD)  # the PLC missed a poll
    record(tmp_path, rows, rotate_s=10.0)
    files = recording_files(tmp_path)
    assert len(files) == 3 and files == sorted(files)
    table = read_table(tmp_path)
    assert (table.files, table.rows, table.dropped, table.not_good) == (3, 29, 1, 1)
    assert [s.shape[0] for s in table.segments] == [10, 2, 7, 10]  # cut at files and the gap
    values = np.concatenate(table.segments)
    assert values[:, 0].tolist() == [float(t) for t in range(30) if t != 12]
    assert table.columns == ["a", "b"]


def test_a_recording_file_without_a_good_row_is_only_counted(tmp_path: Path) -> None:
    record(tmp_path, [(0.0, 1.0), (1.0, 2.0)])
    record(tmp_path, [(100.0, Quality.BAD)])  # the PLC was down the whole file
    table = read_table(tmp_path)
    assert (table.files, table.rows, table.dropped) == (2, 2, 1)


def test_a_directory_with_nothing_usable_says_why(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"no \*\.csv files"):
        read_table(tmp_path)
    record(tmp_path, [(0.0, Quality.BAD), (1.0, Quality.UNCERTAIN)])
    with pytest.raises(ExportError, match="was the PLC answering"):
        read_table(tmp_path)


def test_recordings_with_another_tag_set_name_the_file(tmp_path: Path) -> None:
    record(tmp_path, [(0.0, 1.0)])
    other = tmp_path / "line-20300101T000000Z.csv"
    other.write_text("timestamp,a,c,quality:a,quality:c\n2030-01-01T00:00:00.000Z,1,2,good,good\n")
    with pytest.raises(ExportError, match=r"line-20300101T000000Z\.csv: columns differ") as info:
        read_table(tmp_path)
    assert "missing b; extra c" in str(info.value) and "--columns" in str(info.value)
    assert read_table(tmp_path, ["a"]).rows == 2  # --columns picks the common ones


def test_a_broken_file_in_a_directory_names_the_file_and_the_directory(tmp_path: Path) -> None:
    record(tmp_path, [(0.0, 1.0)])
    (tmp_path / "line-20300101T000000Z.csv").write_text(HEADER + "x,1,oops,good,good\n")
    with pytest.raises(ExportError, match="'oops' is not a number") as info:
        read_table(tmp_path)
    assert f"in the recordings of {tmp_path}" in str(info.value)


def test_directories_and_files_mix_as_inputs(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    record(rec, [(float(t), float(t)) for t in range(5)])
    csv = tmp_path / "old.csv"
    csv.write_text("timestamp,b,a\n0,1,2\n1,3,4\n")
    first, second = read_tables([rec, csv])
    assert second.columns == first.columns == ["a", "b"]
    assert second.segments[0].tolist() == [[2.0, 1.0], [4.0, 3.0]]
