"""Which recorded columns are process signals worth modelling, and which are not.

A historian export or a recording of a PLC holds more than process signals: setpoints,
status words, coils, cycle counters. Charted or modelled as if they were measurements they
break the detectors: a setpoint that never moves trips the SPC flatline rule on every row, a
coil has a "standard deviation" that makes its next switch a 5-sigma event, a counter leaves
any limit fitted on yesterday's range. The workstation trainer (`lineside-export train`) and
the device's commissioning mode both ask `classify_column` first and model only PROCESS.

The rules, in the order they are tried (NaN is a missing value and is ignored; "steps" are
the changes between consecutive finite values):

constant
    One distinct value, or a spread below float noise (a float32 register read back through a
    scale). There is nothing to learn, and the SPC flatline rule fires on it forever.
binary
    At most two distinct values: a coil, a bool, a run/stop flag. A 0/1 signal has no normal
    spread; a model sees its every switch as an outlier.
counter
    Integer values rising by whole steps (a totaliser, a cycle or piece counter), with more
    than `SETPOINT_LEVELS` levels; up to `COUNTER_RESETS` of the steps may drop (a reset or a
    16-bit rollover). Its level only grows, so no limit fitted on one shift holds on the next.
setpoint
    Piecewise constant: few distinct levels (at most `SETPOINT_LEVELS`, or at most
    `SETPOINT_LEVEL_SHARE` of the rows) and a change on under `SETPOINT_CHANGE_SHARE` of the
    steps. An operator's setpoint, a recipe number, a mode word. Between its changes it looks
    flat, and each change is a step the detectors alarm on although nothing is wrong. One
    exception: a column of more than `SETPOINT_LEVELS` levels whose every change moves to the
    next level up or down is a slow signal read at a coarse resolution (a temperature in
    0.1 degC drifting over a shift), not a setpoint.
process
    Everything else. A noisy signal read through a 12-bit ADC has few levels per unit, but it
    changes on most steps, so it stays a process signal; so does a slowly drifting temperature.

Examples
--------
>>> import numpy as np
>>> classify_column(np.full(100, 12.5))
ColumnClass(kind=<ColumnKind.CONSTANT: 'constant'>, reason='never changes (12.5)')
>>> classify_column(np.tile([0.0, 1.0], 50)).reason
'2 distinct values (0, 1) in 100 rows'
>>> str(classify_column(np.repeat([40.0, 45.0, 42.0], 400)).kind)
'setpoint'
>>> classify_column(np.arange(300.0)).kind is ColumnKind.COUNTER
True
>>> classify_column(np.sin(np.arange(500) / 20.0)).kind is ColumnKind.PROCESS
True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

#: A spread at most this fraction of the column's magnitude (at least 1) is float noise.
CONSTANT_RELATIVE_SPREAD = 1e-9
#: At most this many distinct levels (or `SETPOINT_LEVEL_SHARE` of the rows) may be a setpoint.
SETPOINT_LEVELS = 10
SETPOINT_LEVEL_SHARE = 0.01
#: A setpoint changes on fewer than this share of the steps; a process signal on most of them.
SETPOINT_CHANGE_SHARE = 0.02
#: A counter may drop (reset, rollover) on at most this share of its steps.
COUNTER_RESETS = 0.001


class ColumnKind(StrEnum):
    """What a column is, for the detectors: only PROCESS is modelled and charted."""

    PROCESS = "process"
    CONSTANT = "constant"
    BINARY = "binary"
    SETPOINT = "setpoint"
    COUNTER = "counter"


@dataclass(frozen=True)
class ColumnClass:
    """A column's kind and the reason, in plant words with the figure that decided it."""

    kind: ColumnKind
    reason: str

    @property
    def modelled(self) -> bool:
        """True for a process signal, the only kind the detectors should see."""
        return self.kind is ColumnKind.PROCESS


def _number(value: float) -> str:
    return f"{value:.6g}"


def _percent(share: float) -> str:
    return f"{100.0 * share:.1f} %" if share >= 0.001 or share == 0.0 else f"{100 * share:.2g} %"


def _counter_reason(values: npt.NDArray[np.float64], steps: npt.NDArray[np.float64]) -> str:
    """The counter's reason when it is one, else an empty string."""
    if steps.size == 0 or not np.array_equal(values, np.round(values)):
        return ""
    drops = int(np.count_nonzero(steps < 0))
    if drops > COUNTER_RESETS * steps.size or not np.any(steps > 0):
        return ""
    resets = f", {drops} reset{'s' if drops != 1 else ''}" if drops else ""
    return (
        f"rises monotonically by whole steps ({_number(values[0])} to "
        f"{_number(values[-1])}{resets})"
    )


def _slow_quantised(values: npt.NDArray[np.float64], levels: npt.NDArray[np.float64]) -> bool:
    """More than a setpoint's levels, and every change moves to a neighbouring level."""
    if levels.size <= SETPOINT_LEVELS:
        return False
    moves = np.abs(np.diff(np.searchsorted(levels, values)))
    return bool(np.all(moves <= 1))


def classify_column(values: npt.NDArray[np.float64]) -> ColumnClass:
    """The kind of one column of rows, oldest first; NaN cells are missing and ignored."""
    column = np.asarray(values, dtype=np.float64).ravel()
    finite = column[np.isfinite(column)]
    if finite.size == 0:
        return ColumnClass(ColumnKind.CONSTANT, f"no finite value in {column.size} rows")
    low, high = float(np.min(finite)), float(np.max(finite))
    magnitude = max(1.0, abs(low), abs(high))
    if high - low <= CONSTANT_RELATIVE_SPREAD * magnitude:
        return ColumnClass(ColumnKind.CONSTANT, f"never changes ({_number(float(finite[0]))})")
    levels = np.unique(finite)
    rows = finite.size
    if levels.size <= 2:
        shown = ", ".join(_number(float(v)) for v in levels)
        return ColumnClass(ColumnKind.BINARY, f"2 distinct values ({shown}) in {rows} rows")
    steps = np.diff(finite)
    few_levels = levels.size <= max(SETPOINT_LEVELS, SETPOINT_LEVEL_SHARE * rows)
    if levels.size > SETPOINT_LEVELS:
        counter = _counter_reason(finite, steps)
        if counter:
            return ColumnClass(ColumnKind.COUNTER, counter)
    changing = float(np.count_nonzero(steps)) / steps.size
    if few_levels and changing < SETPOINT_CHANGE_SHARE and not _slow_quantised(finite, levels):
        return ColumnClass(
            ColumnKind.SETPOINT, f"changes on {_percent(changing)} of rows, {levels.size} levels"
        )
    return ColumnClass(
        ColumnKind.PROCESS, f"{levels.size} levels, changes on {_percent(changing)} of rows"
    )


def classify_columns(
    matrix: npt.NDArray[np.float64], names: list[str] | tuple[str, ...]
) -> dict[str, ColumnClass]:
    """The kind of each column of a (rows, columns) matrix, by name, in the names' order."""
    rows = np.asarray(matrix, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != len(names):
        raise ValueError(
            f"a matrix of shape {rows.shape} does not hold one column per name ({len(names)})"
        )
    return {name: classify_column(rows[:, i]) for i, name in enumerate(names)}


def excluded_columns(classes: dict[str, ColumnClass]) -> dict[str, ColumnClass]:
    """The columns that are not process signals, by name, with their class."""
    return {name: found for name, found in classes.items() if not found.modelled}
