"""The SPC-alarm share on held-out normal rows, who holds it, and the refusal over the bound."""

from __future__ import annotations

import numpy as np
import pytest

from agent.core.spc import fit_imr
from export.calibrate import check_spc_alarm_share, spc_trace
from export.errors import ExportError

NAMES = ["temp", "setpoint"]


def _rows(n: int, seed: int, setpoint: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([70.0 + rng.normal(0.0, 0.5, n), np.full(n, setpoint)])


def test_a_flat_setpoint_holds_the_alarm_and_is_named_first() -> None:
    train = _rows(600, 1, 120.0)
    train[:300, 1] = 110.0  # moved once in training: a spread, so limits exist
    trace = spc_trace(fit_imr(train, nsigmas=3.0, sigma="larger"), [_rows(300, 2, 120.0)])
    assert trace.share > 0.9
    assert trace.held[1] > 0.9 and trace.held[0] < 0.05
    assert trace.rules[1]["flatline"] > 0.9
    with pytest.raises(ExportError) as info:
        check_spc_alarm_share(trace, NAMES, 0.05, allowed=False)
    message = str(info.value)
    assert "of 300 held-out normal rows (bound 5 %)" in message
    assert "Channels holding it: setpoint on " in message and "(flatline on " in message
    assert "temp on" not in message
    assert "--allow-spc-alarms" in message and "--max-spc-alarm-share" in message


def test_allowed_returns_the_warning_instead() -> None:
    train = _rows(600, 1, 120.0)
    train[:300, 1] = 110.0
    trace = spc_trace(fit_imr(train, nsigmas=3.0, sigma="larger"), [_rows(300, 2, 120.0)])
    warning = check_spc_alarm_share(trace, NAMES, 0.05, allowed=True)
    assert warning.startswith("warning: the SPC alarm holds on ")
    assert warning.endswith("exporting anyway (--allow-spc-alarms)")


def test_a_quiet_process_passes_and_the_bound_is_inclusive() -> None:
    train = np.random.default_rng(3).normal(0.0, 1.0, (2000, 2))
    held_out = np.random.default_rng(4).normal(0.0, 1.0, (600, 2))
    trace = spc_trace(fit_imr(train, nsigmas=3.0, sigma="larger"), [held_out])
    assert trace.share < 0.05
    assert check_spc_alarm_share(trace, NAMES, 0.05, allowed=False) == ""
    assert check_spc_alarm_share(trace, NAMES, trace.share, allowed=False) == ""


def test_each_held_out_segment_starts_a_fresh_chart() -> None:
    train = np.random.default_rng(5).normal(0.0, 1.0, (1000, 2))
    limits = fit_imr(train, nsigmas=3.0, sigma="larger")
    segments = [np.random.default_rng(s).normal(0.0, 1.0, (50, 2)) for s in (6, 7)]
    trace = spc_trace(limits, segments)
    assert trace.active.shape == (100,)
    assert trace.held.shape == (2,) and len(trace.rules) == 2
