"""Phase I: estimate limits from a reference period, optionally dropping out-of-control points.

Every chart's `fit_*` estimates its centre and sigma from the reference points it keeps. With
`rounds > 0` it then looks for reference points beyond the limits it just computed (on any of
its plots), drops them per channel, re-estimates, and repeats, at most `rounds` times or until
nothing more is dropped. That is the textbook practice of removing assignable causes before
the limits go live; the report says which points went, so the quality engineer can check each.
A channel never drops below `min_kept` points: it keeps its last estimate instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from agent.core.spc.base import BoolArray

L = TypeVar("L")


@dataclass(frozen=True)
class Phase1Report:
    """What iterative Phase I did: how many rounds dropped something, and which points."""

    rounds: int
    dropped: tuple[tuple[int, ...], ...]  # per channel, indices into the reference points

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {"rounds": self.rounds, "dropped": [list(d) for d in self.dropped]}


def no_drops(channels: int) -> Phase1Report:
    """The report of a Phase I that kept everything."""
    return Phase1Report(rounds=0, dropped=tuple(() for _ in range(channels)))


def iterate(
    fit: Callable[[BoolArray], L],
    beyond: Callable[[L], BoolArray],
    shape: tuple[int, int],
    rounds: int,
    min_kept: int = 2,
) -> tuple[L, Phase1Report]:
    """Fit on every point, then drop points beyond the limits and refit, up to `rounds` times.

    `fit(kept)` estimates limits from the points where `kept` (points, channels) is True;
    `beyond(limits)` says which reference points are outside those limits.

    Examples
    --------
    >>> data = np.array([[0.0], [1.0], [0.0], [1.0], [50.0]])
    >>> fit = lambda kept: float(np.mean(data[kept[:, 0], 0]))
    >>> beyond = lambda mean: np.abs(data - mean) > 20
    >>> mean, report = iterate(fit, beyond, data.shape, rounds=3)
    >>> mean, report.dropped
    (0.5, ((4,),))
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    kept = np.ones(shape, dtype=bool)
    limits = fit(kept)
    used = 0
    for _ in range(rounds):
        out = beyond(limits) & kept
        left = np.sum(kept & ~out, axis=0)
        out &= (left >= min_kept)[None, :]
        if not out.any():
            break
        kept &= ~out
        limits = fit(kept)
        used += 1
    dropped = tuple(tuple(int(i) for i in np.flatnonzero(~kept[:, c])) for c in range(shape[1]))
    return limits, Phase1Report(rounds=used, dropped=dropped)


def masked_mean(values: np.ndarray, kept: BoolArray) -> np.ndarray:
    """Per-channel mean of `values` (points, channels) over the kept points.

    Summed as deviations from the first point, so constant data has exactly its value as
    the mean (a plain sum can round 4.2 * 3 / 3 to 4.200000000000001, which would put
    every point of a constant channel off its own centre line).
    """
    count = np.sum(kept, axis=0)
    first = values[0]
    spread = np.sum(np.where(kept, values - first, 0.0), axis=0)
    return np.asarray(first + spread / count, dtype=np.float64)
