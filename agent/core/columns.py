"""Stand-in column classifier (replaced by the training branch's)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt


class ColumnKind(StrEnum):
    """What a column is."""

    PROCESS = "process"
    CONSTANT = "constant"
    BINARY = "binary"
    SETPOINT = "setpoint"
    COUNTER = "counter"


@dataclass(frozen=True)
class ColumnClass:
    """A column's kind and why."""

    kind: ColumnKind
    reason: str


def classify_column(values: npt.NDArray[np.float64]) -> ColumnClass:
    """Classify one column."""
    v = values[np.isfinite(values)]
    distinct = np.unique(v)
    if distinct.size <= 1:
        return ColumnClass(ColumnKind.CONSTANT, "never changes")
    if distinct.size <= 2:
        return ColumnClass(ColumnKind.BINARY, "2 distinct values")
    steps = np.diff(v)
    if np.all(steps >= 0) and np.all(v == np.round(v)):
        return ColumnClass(ColumnKind.COUNTER, "rises by whole steps")
    changes = float(np.mean(steps != 0))
    if distinct.size <= 10 and changes < 0.02:
        return ColumnClass(ColumnKind.SETPOINT, f"changes on {changes:.1%} of rows")
    return ColumnClass(ColumnKind.PROCESS, "varies")


def classify_columns(matrix: npt.NDArray[np.float64], names: list[str]) -> dict[str, ColumnClass]:
    """Classify every column."""
    return {n: classify_column(matrix[:, i]) for i, n in enumerate(names)}
