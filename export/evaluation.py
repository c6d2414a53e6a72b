"""Scoring binary detections against labels: one confusion matrix, and NAB changepoint scores.

Pure numpy, written from the SKAB protocol (no code of the benchmark is used).

Outlier detection: the point-wise confusion matrices of every file are summed, then
F1 = TP / (TP + (FP + FN) / 2), FAR = 100 FP / (FP + TN), MAR = 100 FN / (FN + TP).

Changepoint detection (NAB style): the predicted changepoints are the rows where the binary
prediction changes value (0 -> 1 or 1 -> 0; the first row is never one). Each true changepoint
at time c opens a window [c, c + 60 s), cut short at the next true changepoint so that windows
never overlap. The first prediction inside a window is a true positive scored
A_tp * tanh(-2.5 y) (the NAB scaled sigmoid 2 / (1 + e^(5y)) - 1), where
y = (t - c) / 60 s - 1 runs from -1 at the changepoint to 0 at the window's end: about 0.987 for a
detection on the changepoint itself, 0.85 half way, 0 at the end. Later predictions in the same
window are ignored; a prediction outside every window is a false positive worth A_fp; a window
without a prediction is a miss worth A_fn. The null detector predicts nothing (every window
missed); the perfect detector predicts exactly on each changepoint. The reported score is
100 (S - S_null) / (S_perfect - S_null) with S, S_null, S_perfect summed over files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]

NAB_WINDOW_S = 60.0


@dataclass(frozen=True)
class NabProfile:
    """Weights of one NAB application profile."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES = (
    NabProfile("standard", 1.0, -0.11, -1.0),
    NabProfile("LowFP", 1.0, -0.22, -1.0),
    NabProfile("LowFN", 1.0, -0.11, -2.0),
)


@dataclass(frozen=True)
class Confusion:
    """A point-wise confusion matrix; add two with `+`."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn
        )

    @property
    def f1(self) -> float:
        """TP / (TP + (FP + FN) / 2); 0 when there is nothing to find and nothing found."""
        denominator = self.tp + (self.fp + self.fn) / 2
        return self.tp / denominator if denominator else 0.0

    @property
    def far(self) -> float:
        """False alarm rate in percent of the normal points."""
        normal = self.fp + self.tn
        return 100.0 * self.fp / normal if normal else 0.0

    @property
    def mar(self) -> float:
        """Missed alarm rate in percent of the anomalous points."""
        anomalous = self.fn + self.tp
        return 100.0 * self.fn / anomalous if anomalous else 0.0


def _binary(values: Iterable[float] | npt.NDArray[np.generic], name: str) -> npt.NDArray[np.bool_]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.isin(array, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return array.astype(bool)


def confusion(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> Confusion:
    """The confusion matrix of 0/1 predictions against 0/1 labels of the same length.

    Examples
    --------
    >>> c = confusion([0, 0, 1, 1], [0, 1, 1, 0])
    >>> (c.tp, c.fp, c.tn, c.fn), c.f1, c.far, c.mar
    ((1, 1, 1, 1), 0.5, 50.0, 50.0)
    """
    truth = _binary(labels, "labels")  # type: ignore[arg-type]
    guess = _binary(predictions, "predictions")  # type: ignore[arg-type]
    if truth.shape != guess.shape:
        raise ValueError(f"labels ({truth.size}) and predictions ({guess.size}) differ in length")
    return Confusion(
        tp=int(np.count_nonzero(truth & guess)),
        fp=int(np.count_nonzero(~truth & guess)),
        tn=int(np.count_nonzero(~truth & ~guess)),
        fn=int(np.count_nonzero(truth & ~guess)),
    )


def predicted_changepoints(predictions: npt.ArrayLike) -> IntArray:
    """Indices where a 0/1 prediction changes value (never the first row).

    Examples
    --------
    >>> predicted_changepoints([0, 1, 1, 0, 0, 1]).tolist()
    [1, 3, 5]
    """
    guess = _binary(predictions, "predictions").astype(np.int8)  # type: ignore[arg-type]
    return np.flatnonzero(np.diff(guess) != 0) + 1


def tp_weight(offset_s: float, window_s: float = NAB_WINDOW_S) -> float:
    """The tanh-shaped credit of a detection `offset_s` after a changepoint, within a window.

    Examples
    --------
    >>> round(tp_weight(0.0), 4), round(tp_weight(30.0), 4), round(tp_weight(60.0), 4)
    (0.9866, 0.8483, 0.0)
    """
    y = offset_s / window_s - 1.0
    return math.tanh(-2.5 * y) + 0.0  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True)
class NabFile:
    """NAB outcome of one file for one profile."""

    score: float
    null: float
    perfect: float
    detected: int
    missed: int
    false_positives: int


def nab_file(
    times_s: npt.ArrayLike,
    true_changepoints: npt.ArrayLike,
    predictions: npt.ArrayLike,
    profile: NabProfile,
    window_s: float = NAB_WINDOW_S,
) -> NabFile:
    """Score one file: row times in seconds, 0/1 changepoint labels, 0/1 predictions."""
    times = np.asarray(times_s, dtype=np.float64)
    truth = np.flatnonzero(_binary(true_changepoints, "changepoints"))  # type: ignore[arg-type]
    detected_at = predicted_changepoints(predictions)
    if times.shape[0] != np.asarray(predictions).shape[0]:
        raise ValueError("times and predictions differ in length")
    starts = times[truth]
    ends = np.minimum(starts + window_s, np.append(starts[1:], np.inf))
    perfect = profile.a_tp * tp_weight(0.0, window_s) * len(truth)
    null = profile.a_fn * len(truth)
    score = 0.0
    hit = np.zeros(len(truth), dtype=bool)
    false_positives = 0
    for index in detected_at:
        t = times[index]
        inside = np.flatnonzero((starts <= t) & (t < ends))
        if inside.size == 0:
            score += profile.a_fp
            false_positives += 1
            continue
        w = int(inside[0])
        if not hit[w]:
            hit[w] = True
            score += profile.a_tp * tp_weight(t - starts[w], window_s)
    missed = int(np.count_nonzero(~hit))
    score += profile.a_fn * missed
    return NabFile(score, null, perfect, int(hit.sum()), missed, false_positives)


@dataclass(frozen=True)
class NabResult:
    """NAB totals over files for one profile."""

    profile: str
    raw: float
    null: float
    perfect: float
    missed: int
    false_positives: int

    @property
    def score(self) -> float:
        """100 (S - S_null) / (S_perfect - S_null)."""
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span else 0.0


def nab_total(files: list[NabFile], profile: NabProfile) -> NabResult:
    """Sum per-file NAB outcomes and normalise."""
    raw = sum(f.score for f in files)
    null = sum(f.null for f in files)
    perfect = sum(f.perfect for f in files)
    return NabResult(
        profile=profile.name,
        raw=raw,
        null=null,
        perfect=perfect,
        missed=sum(f.missed for f in files),
        false_positives=sum(f.false_positives for f in files),
    )


@dataclass
class Evaluation:
    """Accumulates files and reports the summed confusion matrix and NAB scores."""

    window_s: float = NAB_WINDOW_S

    def __post_init__(self) -> None:
        self.matrix = Confusion()
        self._nab: dict[str, list[NabFile]] = {p.name: [] for p in PROFILES}

    def add(
        self,
        times_s: npt.ArrayLike,
        anomaly: npt.ArrayLike,
        changepoints: npt.ArrayLike,
        predictions: npt.ArrayLike,
    ) -> None:
        """Add one file's test part: row times, labels and 0/1 predictions."""
        self.matrix = self.matrix + confusion(anomaly, predictions)
        for profile in PROFILES:
            self._nab[profile.name].append(
                nab_file(times_s, changepoints, predictions, profile, self.window_s)
            )

    def nab(self) -> dict[str, NabResult]:
        """The NAB result of every profile, by profile name."""
        return {p.name: nab_total(self._nab[p.name], p) for p in PROFILES}
