"""Historian CSVs in, scaled training windows out: reading, checking and splitting the data.

A CSV has one header line and one row per sample, oldest first. The separator is `,` or `;`,
decided from the header line; in a `;` file a decimal comma (`1,5`) is read as `1.5`. A column
named timestamp/datetime/time/date is the time axis and the label columns anomaly/changepoint
are ignored; every other column (or only those named with `--columns`) is a float feature.

A row with an empty or NaN cell is dropped and counted; the rows either side of it are not
adjacent any more, so a window never spans the gap. A cell that is not a number is an error
naming the file, the column and the row (the line number in the file; the header is row 1).

Each file is split chronologically: the first 70% of its rows train, the next 15% validate
(early stopping) and the last 15% calibrate (threshold and int8 parity). Windows never span
two files, two parts of a file, or a dropped row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.config import load_tag_map
from agent.core.scaler import RobustScaler
from agent.core.tabular import read_csv
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
    """Read one CSV into float rows; raise ExportError naming file, column and row."""
    try:
        csv_table = read_csv(path, columns)
    except DataError as exc:
        raise ExportError(str(exc)) from None
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
    if not segments:
        raise ExportError(f"{path}: no complete data rows ({dropped} dropped for empty/NaN cells)")
    return Table(path=path, columns=csv_table.columns, segments=segments, dropped=dropped)


def read_tables(paths: list[Path], columns: list[str] | None = None) -> list[Table]:
    """Read every input; they must all have the feature columns of the first, in any order."""
    if not paths:
        raise ExportError("no input files: give at least one --input CSV")
    first = read_table(paths[0], columns)
    tables = [first]
    for path in paths[1:]:
        table = read_table(path, columns)
        if set(table.columns) != set(first.columns):
            missing = sorted(set(first.columns) - set(table.columns))
            extra = sorted(set(table.columns) - set(first.columns))
            raise ExportError(
                f"{path}: columns differ from {paths[0]}: "
                f"missing {', '.join(missing) or 'none'}; extra {', '.join(extra) or 'none'} "
                "(use --columns to pick the common ones)"
            )
        if table.columns != first.columns:
            order = [table.columns.index(c) for c in first.columns]
            table = Table(
                path=table.path,
                columns=list(first.columns),
                segments=[s[:, order] for s in table.segments],
                dropped=table.dropped,
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
