"""Historian CSVs: one header line, one row per sample, oldest first. Pure reading, no pandas.

The separator is `,` or `;`, decided from the header line; in a `;` file a decimal comma (`1,5`)
is read as `1.5`. A column named timestamp/datetime/time/date is the time axis; the label
columns anomaly/changepoint (as in SKAB) are kept apart from the features. An empty or NaN cell
becomes NaN; a cell that is not a number is an error naming the file, the column and the row
(the line number in the file; the header is row 1). Used by the export path and by the device
commands that replay a CSV (`lineside spc`, `lineside score`).

A column `quality:<name>` (as `lineside record` writes them) is the quality of column `<name>`,
not a feature: where it is not `good`, the value reads as NaN, like an empty cell.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.errors import DataError

FloatArray = npt.NDArray[np.float64]

TIME_COLUMNS = frozenset({"timestamp", "datetime", "time", "date"})
LABEL_COLUMNS = frozenset({"anomaly", "changepoint"})
QUALITY_PREFIX = "quality:"
GOOD = "good"


@dataclass(frozen=True)
class CsvTable:
    """The selected numeric columns of a CSV, NaN where a cell was empty."""

    path: Path
    columns: list[str]
    values: FloatArray  # (rows, columns)
    lines: list[int]  # the file line of every row, for messages
    labels: dict[str, FloatArray]  # anomaly / changepoint columns when present
    not_good: int = 0  # rows where a selected column's quality column was not `good`

    def column(self, name: str) -> FloatArray:
        """One column by name."""
        return self.values[:, self.columns.index(name)]


def recording_order(name: str) -> tuple[str, int, str]:
    """A sort key putting the file names of `lineside record` (`<line>-YYYYmmddTHHMMSSZ.csv`,
    `-1`, `-2`... when a name was taken) in time order; other names sort after, by name.

    >>> names = ["l-20250304T050608Z.csv", "l-20250304T050607Z-1.csv", "l-20250304T050607Z.csv"]
    >>> sorted(names, key=recording_order)[0]
    'l-20250304T050607Z.csv'
    """
    match = re.search(r"(\d{8}T\d{6}Z)(?:-(\d+))?\.csv$", name)
    if match is None:
        return ("~", 0, name)
    return (match.group(1), int(match.group(2) or 0), name)


def detect_separator(header: str) -> str:
    """`;` when the header line has more semicolons than commas, else `,`."""
    return ";" if header.count(";") > header.count(",") else ","


def is_feature(name: str) -> bool:
    """False for the time axis, the label and quality columns and the unnamed column a
    trailing separator makes; True for everything else."""
    lowered = name.strip().lower()
    special = lowered in TIME_COLUMNS or lowered in LABEL_COLUMNS
    return not (special or lowered.startswith(QUALITY_PREFIX) or lowered == "")


def parse_cell(cell: str, sep: str) -> float:
    """A number, NaN for an empty cell; ValueError for anything else."""
    text = cell.strip()
    if text == "":
        return math.nan
    if sep == ";" and "," in text and "." not in text:
        text = text.replace(",", ".")
    return float(text)


def select_columns(
    header: list[str], wanted: list[str] | None, source: str, option: str = "--columns"
) -> list[str]:
    """Feature columns of a header: `wanted` in that order, or every feature column."""
    available = [c for c in header if is_feature(c)]
    if wanted is None:
        if not available:
            raise DataError(
                f"{source}: no feature columns (only {', '.join(header) or 'nothing'}); "
                "the CSV needs at least one numeric column besides the timestamp"
            )
        return available
    for name in wanted:
        if name not in available:
            why = " (it is a timestamp, label or quality column)" if name in header else ""
            raise DataError(
                f"{source}: unknown column {name!r} in {option}{why}; "
                f"available columns: {', '.join(available)}"
            )
    if len(set(wanted)) != len(wanted):
        raise DataError(f"{option} names a column twice: {', '.join(wanted)}")
    return list(wanted)


def read_csv(path: Path, columns: list[str] | None = None, option: str = "--columns") -> CsvTable:
    """Read the feature columns (all, or `columns`) and any label columns of one CSV."""
    name = str(path)
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as f:
            header_line = f.readline()
            if not header_line.strip():
                raise DataError(f"{name}: the file is empty (expected a header line)")
            sep = detect_separator(header_line)
            f.seek(0)
            reader = csv.reader(f, delimiter=sep)
            header = [h.strip() for h in next(reader)]
            named = [h for h in header if h]
            if len(set(named)) != len(named):
                dupes = sorted({h for h in named if named.count(h) > 1})
                raise DataError(f"{name}: the header repeats column(s) {', '.join(dupes)}")
            selected = select_columns(header, columns, name, option)
            label_names = [h for h in header if h.strip().lower() in LABEL_COLUMNS]
            wanted = [*selected, *label_names]
            index = [header.index(c) for c in wanted]
            quality = [(j, header.index(QUALITY_PREFIX + c)) for j, c in enumerate(selected)
                       if QUALITY_PREFIX + c in header]  # fmt: skip
            not_good = 0
            rows: list[list[float]] = []
            lines: list[int] = []
            for cells in reader:
                if not cells or all(not c.strip() for c in cells):
                    continue
                line = reader.line_num
                if len(cells) != len(header):
                    raise DataError(
                        f"{name}: row {line} has {len(cells)} cells, the header has {len(header)}"
                    )
                values: list[float] = []
                for col, i in zip(wanted, index, strict=True):
                    try:
                        value = parse_cell(cells[i], sep)
                    except ValueError:
                        raise DataError(
                            f"{name}: column {col!r} row {line}: {cells[i].strip()!r} "
                            "is not a number"
                        ) from None
                    if math.isinf(value):
                        raise DataError(
                            f"{name}: column {col!r} row {line}: {cells[i].strip()!r} "
                            "is not a finite number"
                        )
                    values.append(value)
                masked = [j for j, q in quality if cells[q].strip().lower() != GOOD]
                for j in masked:
                    values[j] = math.nan
                not_good += bool(masked)
                rows.append(values)
                lines.append(line)
    except OSError as exc:
        raise DataError(f"{name}: cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{name}: malformed CSV: {exc}") from None
    table = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(wanted))
    n = len(selected)
    return CsvTable(
        path=path,
        columns=selected,
        values=table[:, :n],
        lines=lines,
        labels={label.lower(): table[:, n + i] for i, label in enumerate(label_names)},
        not_good=not_good,
    )
