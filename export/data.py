"""Historian CSVs in, scaled training windows out: reading, checking and splitting the data.

A CSV has one header line and one row per sample, oldest first. The separator is `,` or `;`,
decided from the header line; in a `;` file a decimal comma (`1,5`) is read as `1.5`. A column
named timestamp/datetime/time/date is the time axis and the label columns anomaly/changepoint
are ignored; every other column (or only those named with `--columns`) is a float feature.

A row with an empty or NaN cell is dropped and counted; the rows either side of it are not
adjacent any more, so a window never spans the gap. A cell that is not a number is an error
naming the file, the column and the row (the line number in the file; the header is row 1).

Recordings of `lineside record` (agent/sinks/recording_file.py) read the same way: their
`quality:<tag>` columns are not features, and a row whose quality is not `good` for a column
in use is dropped like a row with an empty cell (counted apart, as `not good`). An input may be
a directory: its recording files (`*.csv`), in the time order of their names, are read as one
input, a file with no complete row among them is only counted; they must share their columns.

Each input is split chronologically: the first 70% of its rows train, the next 15% validate
(early stopping) and the last 15% calibrate (threshold and int8 parity). Windows never span
two files, two parts of an input, or a dropped row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.config import load_tag_map
from agent.core.scaler import RobustScaler
from agent.core.tabular import CsvTable, read_csv, recording_order
from agent.core.window import sliding_windows
from agent.errors import ConfigError, DataError
from export.errors import ExportError

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

TRAIN_FRACTION = 0.70
VAL_FRACTION = 0.15


@dataclass(frozen=True)
class Table:
    """The numeric rows of one CSV: `segments` are the runs of rows between dropped rows."""

    path: Path
    columns: list[str]
    segments: list[FloatArray]
    dropped: int
    not_good: int = 0  # of the dropped rows, those dropped for a quality that is not good
    files: int = 1

    @property
    def rows(self) -> int:
        """Rows kept (not counting the dropped ones)."""
        return sum(s.shape[0] for s in self.segments)


@dataclass
class Split:
    """Raw (unscaled) rows per part, as contiguous segments that windows may not cross."""

    train: list[FloatArray] = field(default_factory=list)
    val: list[FloatArray] = field(default_factory=list)
    cal: list[FloatArray] = field(default_factory=list)

    def rows(self, part: str) -> int:
        """Number of rows in `train`, `val` or `cal`."""
        return sum(s.shape[0] for s in getattr(self, part))

    def stacked(self, part: str) -> FloatArray:
        """All rows of a part as one (rows, channels) array, segments concatenated."""
        return np.concatenate(getattr(self, part), axis=0)


def read_table(path: Path, columns: list[str] | None = None) -> Table:
    """Read one CSV, or a directory of recordings, into float rows; raise ExportError naming
    file, column and row."""
    if path.is_dir():
        return read_recordings(path, columns)
    try:
        csv_table = read_csv(path, columns)
    except DataError as exc:
        raise ExportError(str(exc)) from None
    table = _segmented(csv_table)
    if not table.segments:
        raise ExportError(
            f"{path}: no complete data rows ({table.dropped} dropped for empty/NaN cells"
            f"{f', {table.not_good} of them not good quality' if table.not_good else ''})"
        )
    return table


def _segmented(csv_table: CsvTable) -> Table:
    """The runs of complete rows of one CSV."""
    segments: list[FloatArray] = []
    dropped = 0
    start = 0
    incomplete = np.isnan(csv_table.values).any(axis=1)
    for i in np.flatnonzero(incomplete):
        if i > start:
            segments.append(csv_table.values[start:i])
        dropped += 1
        start = int(i) + 1
    if start < len(csv_table.values):
        segments.append(csv_table.values[start:])
    return Table(csv_table.path, csv_table.columns, segments, dropped, csv_table.not_good)


def recording_files(directory: Path) -> list[Path]:
    """The CSVs of a directory of recordings, oldest first (by the time in their names)."""
    return sorted(directory.glob("*.csv"), key=lambda p: recording_order(p.name))


def read_recordings(directory: Path, columns: list[str] | None = None) -> Table:
    """Every recording in a directory as one input, in time order; windows never span files."""
    files = recording_files(directory)
    if not files:
        raise ExportError(f"{directory}: no *.csv files in this directory (give a recording dir)")
    parts: list[Table] = []
    for path in files:
        try:
            table = _segmented(read_csv(path, columns))
        except DataError as exc:
            raise ExportError(f"{exc} (in the recordings of {directory})") from None
        if parts and set(table.columns) != set(parts[0].columns):
            raise _columns_differ(path, table, parts[0])
        order = [table.columns.index(c) for c in (parts[0].columns if parts else table.columns)]
        parts.append(
            Table(path, [table.columns[i] for i in order], [s[:, order] for s in table.segments],
                  table.dropped, table.not_good)
        )  # fmt: skip
    dropped, not_good = sum(t.dropped for t in parts), sum(t.not_good for t in parts)
    segments = [s for t in parts for s in t.segments]
    if not segments:
        raise ExportError(
            f"{directory}: no complete data rows in {len(files)} file(s) ({dropped} dropped, "
            f"{not_good} of them not good quality: was the PLC answering?)"
        )
    return Table(directory, parts[0].columns, segments, dropped, not_good, len(files))


def _columns_differ(path: Path, table: Table, first: Table) -> ExportError:
    missing = sorted(set(first.columns) - set(table.columns))
    extra = sorted(set(table.columns) - set(first.columns))
    return ExportError(
        f"{path}: columns differ from {first.path}: "
        f"missing {', '.join(missing) or 'none'}; extra {', '.join(extra) or 'none'} "
        "(use --columns to pick the common ones)"
    )


def read_tables(paths: list[Path], columns: list[str] | None = None) -> list[Table]:
    """Read every input; they must all have the feature columns of the first, in any order."""
    if not paths:
        raise ExportError("no input files: give at least one --input CSV")
    first = read_table(paths[0], columns)
    tables = [first]
    for path in paths[1:]:
        table = read_table(path, columns)
        if set(table.columns) != set(first.columns):
            raise _columns_differ(path, table, first)
        if table.columns != first.columns:
            order = [table.columns.index(c) for c in first.columns]
            table = Table(
                path=table.path,
                columns=list(first.columns),
                segments=[s[:, order] for s in table.segments],
                dropped=table.dropped,
                not_good=table.not_good,
                files=table.files,
            )
        tables.append(table)
    return tables


def _cut(segments: list[FloatArray], start: int, stop: int) -> list[FloatArray]:
    """The rows [start, stop) of the concatenated segments, still split at segment edges."""
    out: list[FloatArray] = []
    offset = 0
    for seg in segments:
        lo, hi = max(start - offset, 0), min(stop - offset, seg.shape[0])
        if lo < hi:
            out.append(seg[lo:hi])
        offset += seg.shape[0]
    return out


def split_tables(tables: list[Table]) -> Split:
    """Split each file 70/15/15 chronologically and gather the parts across files."""
    split = Split()
    for table in tables:
        n = table.rows
        a = round(n * TRAIN_FRACTION)
        b = a + round(n * VAL_FRACTION)
        split.train += _cut(table.segments, 0, a)
        split.val += _cut(table.segments, a, b)
        split.cal += _cut(table.segments, b, n)
    return split


def count_windows(segments: list[FloatArray], window: int, hop: int) -> int:
    """How many windows `make_windows` would cut from these segments."""
    return sum((s.shape[0] - window) // hop + 1 for s in segments if s.shape[0] >= window)


def make_windows(
    segments: list[FloatArray], scaler: RobustScaler, window: int, hop: int
) -> Float32Array:
    """Scaled float32 windows (n, window, channels) of every segment; none crosses an edge."""
    channels = segments[0].shape[1] if segments else 0
    parts = [sliding_windows(scaler.transform(s), window, hop) for s in segments]
    if not parts:
        return np.empty((0, window, channels), dtype=np.float32)
    return np.concatenate(parts, axis=0).astype(np.float32)


def read_tag_units(path: Path) -> dict[str, str]:
    """Units by tag name from a PLC tag map, read and validated exactly as the agent reads it."""
    try:
        tag_map = load_tag_map(path)
    except ConfigError as exc:
        raise ExportError(f"tag map {exc}") from None
    return {tag.name: tag.unit for tag in tag_map.tags}
