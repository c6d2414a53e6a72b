"""The shared CSV reader: separators, time and label columns, empty cells, clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agent.core.tabular import read_csv
from agent.errors import DataError

SKAB_LIKE = (
    "datetime;Accelerometer1RMS;Current;anomaly;changepoint\n"
    "2020-03-09 10:14:33;0,0265;1,45;0.0;0.0\n"
    "2020-03-09 10:14:34;0,0272;;1.0;1.0\n"
)


def test_skab_style_file_keeps_labels_apart(tmp_path: Path) -> None:
    path = tmp_path / "skab.csv"
    path.write_text(SKAB_LIKE)
    table = read_csv(path)
    assert table.columns == ["Accelerometer1RMS", "Current"]
    assert table.values.shape == (2, 2)
    assert table.column("Accelerometer1RMS").tolist() == [0.0265, 0.0272]  # decimal commas
    assert math.isnan(table.values[1, 1])  # an empty cell is NaN, not an error
    assert table.labels["anomaly"].tolist() == [0.0, 1.0]
    assert table.labels["changepoint"].tolist() == [0.0, 1.0]
    assert table.lines == [2, 3]


def test_a_word_in_a_number_column_names_file_column_and_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,flow\n2026-01-01T00:00:00Z,1.5\n2026-01-01T00:00:01Z,abc\n")
    with pytest.raises(DataError, match=r"bad\.csv: column 'flow' row 3: 'abc' is not a number"):
        read_csv(path)


def test_unknown_column_lists_the_available_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("time,a,b\n1,2,3\n")
    with pytest.raises(DataError, match="unknown column 'c' in --column; available columns: a, b"):
        read_csv(path, ["c"], option="--column")
