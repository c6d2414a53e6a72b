"""The SKAB benchmark's selection rule and leave-one-folder-out, on hand-made files."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from benchmarks import skab_select
from benchmarks.skab_select import (
    Candidate,
    FileTruth,
    choose,
    evaluate,
    leave_one_folder_out,
)


def _truth(name: str, folder: str, labels: list[int]) -> FileTruth:
    n = len(labels)
    return FileTruth(name, folder, np.arange(float(n)), np.array(labels, float), np.zeros(n))


def _pred(bits: str) -> np.ndarray:
    return np.array([b == "1" for b in bits], dtype=bool)


TRUTHS = [
    _truth("v1", "valve1", [0, 0, 0, 0, 1, 1, 1, 1]),
    _truth("v2", "valve2", [0, 0, 0, 0, 1, 1, 1, 1]),
    _truth("o1", "other", [0, 0, 0, 0, 1, 1, 1, 1]),
]
QUIET = Candidate(1.0, 3, "vae")  # misses half of every fault, never a false alarm
EAGER = Candidate(1.0, 3, "vae-or-shift")  # finds every fault, alarms early in `other` only
PREDS = {
    QUIET: {"v1": _pred("00000011"), "v2": _pred("00000011"), "o1": _pred("00000011")},
    EAGER: {"v1": _pred("00001111"), "v2": _pred("00001111"), "o1": _pred("11111111")},
}


def test_doctests_of_the_selection_module() -> None:
    """The examples in the module's docstrings run and hold."""
    result = doctest.testmod(skab_select)
    assert result.attempted >= 1 and result.failed == 0


def test_the_rule_takes_the_best_f1_under_the_far_cap_on_the_selection_folders_only() -> None:
    """valve1 never changes the choice: only valve2 + other are looked at."""
    scored = [evaluate(c, TRUTHS, p) for c, p in PREDS.items()]
    select = {s.candidate: s.select.matrix for s in scored}
    # On valve2 + other EAGER has F1 0.8 but FAR 50 % (over the cap); QUIET 0.667 at FAR 0.
    assert select[EAGER].far == pytest.approx(50.0) and select[EAGER].f1 == pytest.approx(0.8)
    assert choose(scored).candidate == QUIET
    flipped = {c: {**p, "v1": _pred("11111111")} for c, p in PREDS.items()}
    assert choose([evaluate(c, TRUTHS, p) for c, p in flipped.items()]).candidate == QUIET


def test_leave_one_folder_out_chooses_without_the_folder_it_scores() -> None:
    """Holding out `other` leaves two clean valve folders, where EAGER wins; holding out a
    valve folder keeps `other` in the choice, and its false alarms rule EAGER out."""
    folds, pooled = leave_one_folder_out(TRUTHS, PREDS)
    by_folder = {f.folder: f for f in folds}
    assert set(by_folder) == {"valve1", "valve2", "other"}
    assert by_folder["other"].chosen == EAGER
    assert by_folder["other"].chosen_on == ("valve1", "valve2")
    assert by_folder["valve1"].chosen == QUIET and by_folder["valve2"].chosen == QUIET
    assert by_folder["other"].held_out.matrix.fp == 4
    m = pooled.matrix
    # valve1 and valve2 by QUIET (2 of 4 found each), other by EAGER (4 found, 4 false).
    assert (m.tp, m.fn, m.fp, m.tn) == (8, 4, 4, 8)
