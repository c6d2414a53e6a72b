"""The column classifier on synthetic columns: what must be left out, and what must stay."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from agent.core import columns
from agent.core.columns import ColumnKind, classify_column, classify_columns, excluded_columns

ROWS = 7200  # two hours at 1 Hz, the length of a short recording


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _setpoint(levels: list[float], changes: int, rows: int = ROWS) -> np.ndarray:
    """A value that sits on one of `levels` and moves `changes` times, at random rows."""
    rng = _rng(1)
    at = np.sort(rng.choice(np.arange(1, rows), size=changes, replace=False))
    out = np.empty(rows)
    edges = [0, *at.tolist(), rows]
    for i in range(len(edges) - 1):
        out[edges[i] : edges[i + 1]] = levels[i % len(levels)]
    return out


def _adc_12bit(signal: np.ndarray, span: float) -> np.ndarray:
    """A reading through a 12-bit converter over 0..span: quantised to span / 4096."""
    step = span / 4096.0
    return np.round(signal / step) * step


def test_docstring_examples_run() -> None:
    result = doctest.testmod(columns, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- left out -----------------------------------------------------------------------------------


def test_a_constant_column_names_its_value() -> None:
    found = classify_column(np.full(ROWS, 12.5))
    assert found.kind is ColumnKind.CONSTANT
    assert found.reason == "never changes (12.5)"
    assert not found.modelled


def test_float_noise_on_a_constant_is_still_constant() -> None:
    # a float32 setpoint read back through a scale: the last bits wobble
    wobble = 250.0 + _rng().normal(0.0, 1e-12, ROWS)
    assert classify_column(wobble).kind is ColumnKind.CONSTANT


def test_a_column_with_no_finite_value_is_constant() -> None:
    found = classify_column(np.full(10, np.nan))
    assert found.kind is ColumnKind.CONSTANT
    assert "no finite value in 10 rows" in found.reason


def test_a_coil_is_binary_and_missing_rows_are_ignored() -> None:
    coil = (_rng().random(ROWS) < 0.3).astype(float)
    coil[:200] = np.nan
    found = classify_column(coil)
    assert found.kind is ColumnKind.BINARY
    assert found.reason == f"2 distinct values (0, 1) in {ROWS - 200} rows"


def test_a_run_flag_of_other_values_is_binary() -> None:
    flag = np.where(np.arange(ROWS) % 600 < 300, 5.0, -5.0)
    found = classify_column(flag)
    assert found.kind is ColumnKind.BINARY
    assert "(-5, 5)" in found.reason


def test_a_setpoint_of_four_levels_is_setpoint_like() -> None:
    found = classify_column(_setpoint([180.0, 185.0, 190.0, 200.0], changes=20))
    assert found.kind is ColumnKind.SETPOINT
    assert found.reason == "changes on 0.3 % of rows, 4 levels"


def test_a_recipe_of_many_levels_that_jumps_rarely_is_setpoint_like() -> None:
    # 40 recipes (more than 10 levels, under 1 % of the rows), jumping between far levels
    recipes = [float(v) for v in _rng(3).permutation(40) * 2.5]
    found = classify_column(_setpoint(recipes, changes=60))
    assert found.kind is ColumnKind.SETPOINT
    assert "40 levels" in found.reason


def test_a_setpoint_raised_in_whole_steps_is_a_setpoint_not_a_counter() -> None:
    found = classify_column(_setpoint([100.0, 110.0, 120.0, 130.0], changes=3))
    assert found.kind is ColumnKind.SETPOINT


def test_a_totaliser_is_a_counter() -> None:
    total = np.cumsum(_rng().integers(0, 3, ROWS)).astype(float)
    found = classify_column(total)
    assert found.kind is ColumnKind.COUNTER
    assert found.reason.startswith("rises monotonically by whole steps")


def test_a_cycle_counter_that_rolls_over_is_a_counter() -> None:
    cycles = ((np.arange(ROWS) // 30 + 65400) % 65536).astype(float)  # one 16-bit rollover
    found = classify_column(cycles)
    assert found.kind is ColumnKind.COUNTER
    assert "1 reset" in found.reason


# --- kept ---------------------------------------------------------------------------------------


def test_a_noisy_signal_through_a_12_bit_adc_stays_process() -> None:
    # 4 bar of pressure on a 0..10 bar converter: quantised to 2.4 mbar, noise of a few steps
    rng = _rng(4)
    pressure = 4.0 + 0.05 * np.sin(np.arange(ROWS) / 300.0) + rng.normal(0.0, 0.004, ROWS)
    reading = _adc_12bit(pressure, 10.0)
    assert np.unique(reading).size < 0.01 * ROWS  # few levels: the setpoint bound alone fails
    found = classify_column(reading)
    assert found.kind is ColumnKind.PROCESS, found.reason
    assert found.modelled


def test_raw_adc_counts_with_noise_stay_process_not_counter() -> None:
    counts = np.round(2048 + _rng(5).normal(0.0, 3.0, ROWS))
    assert classify_column(counts).kind is ColumnKind.PROCESS


def test_a_slowly_drifting_temperature_stays_process() -> None:
    rng = _rng(6)
    temp = 20.0 + 6.0 * np.arange(ROWS) / ROWS + rng.normal(0.0, 0.03, ROWS)
    assert classify_column(np.round(temp, 2)).kind is ColumnKind.PROCESS


def test_a_noiseless_drift_read_in_tenths_stays_process() -> None:
    # 20.0 -> 26.0 degC in 0.1 steps: 61 levels, a change on 0.8 % of rows, each to the next
    # level; the setpoint rule alone would take it
    temp = np.round(20.0 + 3.0 * (1 - np.cos(np.pi * np.arange(ROWS) / ROWS)), 1)
    found = classify_column(temp)
    assert found.kind is ColumnKind.PROCESS, found.reason


def test_a_slow_sine_stays_process() -> None:
    found = classify_column(50.0 + np.sin(np.arange(ROWS) / 500.0))
    assert found.kind is ColumnKind.PROCESS
    assert "changes on 100.0 % of rows" in found.reason


# --- many columns -------------------------------------------------------------------------------


def test_classify_columns_keeps_the_names_order_and_excluded_picks_the_rest() -> None:
    rng = _rng(7)
    matrix = np.column_stack(
        [
            70.0 + rng.normal(0.0, 0.5, ROWS),
            np.full(ROWS, 3.0),
            (rng.random(ROWS) < 0.5).astype(float),
            _setpoint([1.0, 2.0, 3.0], changes=5),
        ]
    )
    names = ["temp", "mode", "pump_on", "recipe"]
    found = classify_columns(matrix, names)
    assert list(found) == names
    assert [c.kind for c in found.values()] == [
        ColumnKind.PROCESS,
        ColumnKind.CONSTANT,
        ColumnKind.BINARY,
        ColumnKind.SETPOINT,
    ]
    assert list(excluded_columns(found)) == ["mode", "pump_on", "recipe"]


def test_classify_columns_refuses_a_names_list_of_another_length() -> None:
    with pytest.raises(ValueError, match="one column per name"):
        classify_columns(np.zeros((5, 3)), ["a", "b"])
