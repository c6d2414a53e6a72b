"""Which channels drift in normal operation, found on the normal rows the export is given.

A channel drifts when a straight line through time explains at least `MIN_TREND_SHARE` of its
variance in an input (R^2 of the least-squares trend over that input's rows, in time order):
the water of a test rig warming through a run, a filter loading up, a tool wearing. Such a
level is not a property of the process: the next run starts somewhere else, so a model that
learnt it raises an alarm on the next ordinary run. A drifting channel is modelled relative
(each window minus its own mean: its shape and its relation to the other channels still
count) and the shift detector leaves it out.

R^2 = 0.5 means the trend's spread equals the noise's: the travel from the first row to the
last is then sqrt(12) ~ 3.5 times the noise's standard deviation. No label is ever looked at;
with several inputs a channel drifts if it drifts in any of them (each run of a warming rig
warms). `--relative A,B` replaces this choice, `--relative none` switches it off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Share of a channel's variance a linear trend must explain in an input for it to drift.
MIN_TREND_SHARE = 0.5
#: Inputs shorter than this say nothing about drift (a line through 10 points fits anything).
MIN_ROWS = 30


def trend_share(rows: FloatArray) -> FloatArray:
    """Per channel, the share of its variance explained by a least-squares line in time.

    Examples
    --------
    >>> t = np.linspace(0.0, 1.0, 200)
    >>> rng = np.random.default_rng(0)
    >>> rows = np.column_stack([10 * t + rng.normal(size=200), rng.normal(size=200)])
    >>> [round(float(s), 1) for s in trend_share(rows)]
    [0.9, 0.0]
    """
    n = rows.shape[0]
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    centred = rows - rows.mean(axis=0)
    total = np.sum(centred**2, axis=0)
    slope = (t @ centred) / float(t @ t)
    explained = slope**2 * float(t @ t)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, explained / total, 0.0)
    return np.asarray(np.clip(share, 0.0, 1.0), dtype=np.float64)


@dataclass(frozen=True)
class Drift:
    """The drifting channels, and per channel the largest trend share over the inputs."""

    columns: list[str]
    share: list[float]
    drifting: list[str] = field(default_factory=list)
    chosen_by: str = "auto"

    def lines(self) -> list[str]:
        """What the training log says about drift."""
        if self.chosen_by != "auto":
            named = ", ".join(self.drifting) or "none"
            return [f"relative channels (named with --relative): {named}"]
        if not self.drifting:
            return [
                f"drift: no channel drifts (a trend explains under {MIN_TREND_SHARE:.0%} of "
                "each channel's variance); every level is modelled"
            ]
        found = ", ".join(
            f"{c} (trend explains {100 * s:.0f} %)"
            for c, s in zip(self.columns, self.share, strict=True)
            if c in self.drifting
        )
        return [
            f"drift: modelled relative (each window minus its mean) and left out of the shift "
            f"detector: {found}; name the channels with --relative to choose, or --relative none"
        ]

    def record(self) -> dict[str, Any]:
        """The manifest's `training.drift`."""
        return {
            "chosen_by": self.chosen_by,
            "relative_channels": list(self.drifting),
            "rule": f"a linear trend explains at least {MIN_TREND_SHARE:g} of the variance "
            "(R^2) of the channel in an input",
            "trend_share": {c: round(s, 4) for c, s in zip(self.columns, self.share, strict=True)},
        }


def find_drift(streams: list[FloatArray], columns: list[str]) -> Drift:
    """The channels whose trend share reaches MIN_TREND_SHARE in any input of MIN_ROWS+ rows."""
    share = np.zeros(len(columns))
    for rows in streams:
        if rows.shape[0] >= MIN_ROWS:
            share = np.maximum(share, trend_share(rows))
    drifting = [c for c, s in zip(columns, share, strict=True) if s >= MIN_TREND_SHARE]
    return Drift(columns, [float(s) for s in share], drifting, "auto")


def named_drift(streams: list[FloatArray], columns: list[str], named: list[str]) -> Drift:
    """The channels named with `--relative`, with the trend shares recorded beside them."""
    found = find_drift(streams, columns)
    return Drift(columns, found.share, [c for c in columns if c in named], "--relative")
