"""The evaluator against cases whose figures are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from export.evaluation import (
    PROFILES,
    Confusion,
    Evaluation,
    confusion,
    nab_file,
    nab_total,
    predicted_changepoints,
    tp_weight,
)

STANDARD, LOW_FP, LOW_FN = PROFILES
TIMES = np.arange(200, dtype=np.float64)  # one row per second


def _cp(*rows: int, n: int = 200) -> np.ndarray:
    labels = np.zeros(n)
    labels[list(rows)] = 1
    return labels


def _steps(*edges: int, n: int = 200) -> np.ndarray:
    """A 0/1 prediction that flips at each given row."""
    pred = np.zeros(n)
    for edge in edges:
        pred[edge:] = 1 - pred[edge:]
    return pred


def test_confusion_and_rates_by_hand() -> None:
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    preds = [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    c = confusion(labels, preds)
    assert (c.tp, c.fp, c.tn, c.fn) == (3, 1, 3, 3)
    assert c.f1 == pytest.approx(3 / (3 + (1 + 3) / 2))
    assert c.far == pytest.approx(25.0)
    assert c.mar == pytest.approx(50.0)


def test_matrices_are_summed_before_the_ratios() -> None:
    a = confusion([1, 1, 1, 1], [1, 1, 1, 1])  # f1 1.0 on its own
    b = confusion([1, 0, 0, 0], [0, 1, 1, 1])  # f1 0.0 on its own
    total = a + b
    assert total == Confusion(tp=4, fp=3, tn=0, fn=1)
    assert total.f1 == pytest.approx(4 / (4 + 2))  # not the mean of the two F1s (0.5)


def test_flag_everything_gives_the_known_trap() -> None:
    labels = np.r_[np.zeros(46), np.ones(54)]
    c = confusion(labels, np.ones(100))
    assert c.far == 100.0 and c.mar == 0.0
    assert c.f1 == pytest.approx(54 / (54 + 46 / 2))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        confusion([0, 2], [0, 1])
    with pytest.raises(ValueError, match="differ in length"):
        confusion([0, 1, 1], [0, 1])


def test_predicted_changepoints_are_value_changes() -> None:
    assert predicted_changepoints([1, 1, 0, 1]).tolist() == [2, 3]
    assert predicted_changepoints([1, 1, 1]).tolist() == []


def test_tp_weight_is_the_nab_scaled_sigmoid() -> None:
    for offset in (0.0, 12.0, 45.0):
        y = offset / 60 - 1
        assert tp_weight(offset) == pytest.approx(2 / (1 + math.exp(5 * y)) - 1)
    assert tp_weight(0.0) > tp_weight(10.0) > tp_weight(50.0) > 0.0


def test_nab_perfect_null_and_late_detection() -> None:
    labels = _cp(50)
    perfect = nab_file(TIMES, labels, _steps(50), STANDARD)
    assert perfect.score == pytest.approx(perfect.perfect)
    assert perfect.perfect == pytest.approx(math.tanh(2.5))  # 0.98661
    assert perfect.null == -1.0
    assert nab_total([perfect], STANDARD).score == pytest.approx(100.0)

    nothing = nab_file(TIMES, labels, np.zeros(200), STANDARD)
    assert (nothing.score, nothing.missed) == (-1.0, 1)
    assert nab_total([nothing], STANDARD).score == pytest.approx(0.0)

    late = nab_file(TIMES, labels, _steps(80), STANDARD)  # 30 s in: tanh(1.25) = 0.84828
    assert late.score == pytest.approx(0.848284, abs=1e-6)
    assert nab_total([late], STANDARD).score == pytest.approx(
        100 * (0.848284 + 1) / (0.986614 + 1), abs=1e-4
    )


def test_nab_false_positives_and_profiles() -> None:
    labels = _cp(50)
    # A one-row blip at 10 makes two changepoints (10 and 11), both outside [50, 110): 2 FPs.
    # The window is missed.
    pred = _steps(10, 11)
    standard = nab_file(TIMES, labels, pred, STANDARD)
    assert (standard.false_positives, standard.missed) == (2, 1)
    assert standard.score == pytest.approx(2 * -0.11 - 1.0)
    assert nab_total([standard], STANDARD).score == pytest.approx(-22 / 1.986614, abs=1e-4)
    low_fp = nab_file(TIMES, labels, pred, LOW_FP)
    assert low_fp.score == pytest.approx(2 * -0.22 - 1.0)
    low_fn = nab_file(TIMES, labels, pred, LOW_FN)
    assert low_fn.score == pytest.approx(2 * -0.11 - 2.0)
    assert low_fn.null == -2.0


def test_nab_window_is_sixty_seconds_and_only_the_first_detection_counts() -> None:
    labels = _cp(50)
    # Raised at 55 (TP), cleared at 100 (same window: ignored), raised at 110 (outside: FP).
    result = nab_file(TIMES, labels, _steps(55, 100, 110), STANDARD)
    assert (result.detected, result.false_positives, result.missed) == (1, 1, 0)
    assert result.score == pytest.approx(tp_weight(5.0) - 0.11)


def test_nab_windows_stop_at_the_next_changepoint() -> None:
    labels = _cp(50, 70)
    # A detection at 75 is in the second window (5 s after its changepoint), not the first.
    result = nab_file(TIMES, labels, _steps(75), STANDARD)
    assert (result.detected, result.missed) == (1, 1)
    assert result.score == pytest.approx(tp_weight(5.0) - 1.0)


def test_nab_uses_time_not_rows() -> None:
    times = np.arange(200, dtype=np.float64) * 2.0  # one row every 2 s
    labels = _cp(50)
    inside = nab_file(times, labels, _steps(75), STANDARD)  # 50 s after: inside the window
    outside = nab_file(times, labels, _steps(81), STANDARD)  # 62 s after: outside
    assert inside.detected == 1 and inside.score == pytest.approx(tp_weight(50.0))
    assert outside.detected == 0 and outside.false_positives == 1


def test_evaluation_sums_files() -> None:
    ev = Evaluation()
    ev.add(TIMES, _steps(50), _cp(50), _steps(50))
    ev.add(TIMES, _steps(50), _cp(50), np.zeros(200))
    assert ev.matrix == Confusion(tp=150, fp=0, tn=100, fn=150)
    nab = ev.nab()
    assert nab["standard"].score == pytest.approx(50.0)  # one perfect file, one missed
    assert nab["standard"].missed == 1
    assert set(nab) == {"standard", "LowFP", "LowFN"}
