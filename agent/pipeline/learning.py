"""On-device learning for a line with no model yet (commissioning mode). Pure numpy.

While it learns, the `Learner` keeps the good readings of every candidate tag. It counts time
only between two consecutive rows that had at least one good reading, so a PLC that is down
stops the clock (learning waits) and a bad reading is never learnt from. Once `period_s` of
good data and `min_rows` rows are in (or `max_rows`, the memory bound), `fit` makes the
`LearnedLimits` of the line, per tag:

- its class (agent.core.columns): only `process` tags are modelled; constant, binary,
  setpoint-like and counter tags are published but never charted (a setpoint that never
  moves would raise a flatline alarm that never clears);
- for a modelled tag, Phase I I-MR limits (agent.core.spc.fit_imr, the larger of the
  moving-range and the overall sigma, 3 sigma: the export's choice) and the drift-tolerant
  shift detector's scale and threshold, each fitted on that tag's own good readings. The
  shift fit runs the live detector itself (its running-mean warm-up included) over the rows:
  the scale is the RMS of fast minus baseline on the first 70 %, the threshold the largest
  score on the rest x 1.25 (the export's margin), at least MIN_SHIFT_THRESHOLD.

The limits are JSON-able (`to_dict`/`from_dict`), so the runtime keeps them across restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.bundles.manifest import ShiftParams
from agent.config.learning import LearningConfig
from agent.core.columns import ColumnKind, classify_column
from agent.core.spc import fit_imr
from agent.pipeline.detectors.shift import ShiftDetector

FloatArray = npt.NDArray[np.float64]
NSIGMAS = 3.0
#: The shift detector's EWMA weights and margin, as the export fits them (export/shift_fit.py).
FAST, SLOW, MARGIN = 0.2, 0.005, 1.25
#: The first share of a tag's learning rows gives the shift scale, the rest the threshold.
FIT_FRACTION = 0.7
#: The lowest shift threshold learnt (in scales): a short learning period sees too few rows
#: for its largest normal shift to be a safe threshold.
MIN_SHIFT_THRESHOLD = 4.0
#: A gap between two good rows longer than this (s) is an outage, not learning time.
MAX_STEP_S = 60.0
WAITING, LEARNING, LEARNED = "waiting for good data", "learning", "learned"
FORMAT = 1


@dataclass(frozen=True)
class LearningStatus:
    """What SCADA shows while a line learns: state, progress (0..1), seconds left."""

    state: str
    progress: float
    eta_s: float | None
    rows: int


@dataclass(frozen=True)
class LearnedLimits:
    """What a line learnt on the device: each tag's class, and the modelled tags' limits."""

    channels: list[str]
    #: Per candidate tag: (kind, reason in plant words).
    classes: dict[str, tuple[str, str]]
    modelled: list[str]
    center: list[float]
    sigma: list[float]
    mr_bar: list[float]
    shift: ShiftParams | None
    rows: int
    learned_s: float
    learned_at: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in the state directory."""
        return {
            "format": FORMAT,
            "channels": list(self.channels),
            "classes": {k: list(v) for k, v in self.classes.items()},
            "modelled": list(self.modelled),
            "spc": {"center": self.center, "sigma": self.sigma, "mr_bar": self.mr_bar},
            "shift": self.shift.to_dict() if self.shift is not None else None,
            "rows": self.rows,
            "learned_s": self.learned_s,
            "learned_at": self.learned_at,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LearnedLimits:
        """Parse `to_dict`'s output; ValueError/KeyError/TypeError when it does not fit."""
        if raw.get("format") != FORMAT:
            raise ValueError(f"learned limits format {raw.get('format')!r}, expected {FORMAT}")
        modelled = [str(c) for c in raw["modelled"]]
        spc = raw["spc"]
        center, sigma, mr_bar = ([float(v) for v in spc[k]] for k in ("center", "sigma", "mr_bar"))
        if not len(center) == len(sigma) == len(mr_bar) == len(modelled):
            raise ValueError("learned limits: one centre, sigma and MR-bar per modelled tag")
        shift = ShiftParams.from_dict(raw["shift"]) if raw["shift"] is not None else None
        if shift is not None and shift.channels != len(modelled):
            raise ValueError("learned limits: the shift detector covers other tags")
        return cls(
            channels=[str(c) for c in raw["channels"]],
            classes={str(k): (str(v[0]), str(v[1])) for k, v in raw["classes"].items()},
            modelled=modelled,
            center=center,
            sigma=sigma,
            mr_bar=mr_bar,
            shift=shift,
            rows=int(raw["rows"]),
            learned_s=float(raw["learned_s"]),
            learned_at=float(raw["learned_at"]),
        )


class Learner:
    """Collects good rows of a line's candidate tags until the learning period is complete.

    Examples
    --------
    >>> cfg = LearningConfig(period_s=20.0, min_rows=10, max_rows=1000)
    >>> learner = Learner(["a", "b"], cfg)
    >>> learner.status().state
    'waiting for good data'
    >>> rng = np.random.default_rng(1)
    >>> done = [learner.observe(float(t), np.array([rng.normal(), 5.0])) for t in range(30)]
    >>> done.index(True), learner.status().progress
    (20, 1.0)
    >>> learned = learner.fit(now=0.0)
    >>> learned.modelled, learned.classes["b"][0]
    (['a'], 'constant')
    """

    def __init__(self, channels: list[str], config: LearningConfig) -> None:
        self.channels = channels
        self.config = config
        self._rows: list[FloatArray] = []
        self._learned_s = 0.0
        self._last_good_ts: float | None = None
        self.skipped = 0  # rows without any good reading (the PLC down)

    @property
    def rows(self) -> int:
        """Rows kept so far (each with at least one good reading)."""
        return len(self._rows)

    @property
    def complete(self) -> bool:
        """The period (and min_rows) is learnt, or the memory bound is reached."""
        c = self.config
        return (self._learned_s >= c.period_s and self.rows >= c.min_rows) or (
            self.rows >= c.max_rows
        )

    def observe(self, ts: float, row: FloatArray) -> bool:
        """Take one row (NaN: no good reading of that tag); True once learning is complete."""
        if self.complete:
            return True
        if not np.isfinite(row).any():
            self.skipped += 1
            self._last_good_ts = None  # the outage is not learning time
            return False
        if self._last_good_ts is not None:
            step = ts - self._last_good_ts
            if 0.0 < step <= MAX_STEP_S:
                self._learned_s += step
        self._last_good_ts = ts
        self._rows.append(np.array(row, dtype=np.float64))
        return self.complete

    def status(self) -> LearningStatus:
        """Progress so far, and the time left if good data keeps coming."""
        c = self.config
        if self.complete:
            return LearningStatus(LEARNED, 1.0, 0.0, self.rows)
        progress = min(self._learned_s / c.period_s, self.rows / c.min_rows, 1.0)
        state = LEARNING if self._last_good_ts is not None else WAITING
        eta = max(c.period_s - self._learned_s, 0.0) if state == LEARNING else None
        return LearningStatus(state, progress, eta, self.rows)

    def fit(self, now: float) -> LearnedLimits:
        """The learnt classes and limits (call once `complete`)."""
        data = np.vstack(self._rows) if self._rows else np.empty((0, len(self.channels)))
        return fit_limits(self.channels, data, self.config.min_rows, self._learned_s, now)


def fit_limits(
    channels: list[str], data: FloatArray, min_rows: int, learned_s: float, now: float
) -> LearnedLimits:
    """Classify each tag on its good readings and fit the process tags' SPC and shift limits."""
    classes: dict[str, tuple[str, str]] = {}
    modelled: list[int] = []
    for i, name in enumerate(channels):
        good = data[:, i][np.isfinite(data[:, i])]
        if good.size < min_rows:
            classes[name] = ("no-data", f"only {good.size} good readings while learning")
            continue
        kind = classify_column(good)
        classes[name] = (kind.kind.value, kind.reason)
        if kind.kind is ColumnKind.PROCESS:
            modelled.append(i)
    center, sigma, mr_bar = [], [], []
    scales, thresholds, watched = [], [], []
    for j, i in enumerate(modelled):
        good = data[:, i][np.isfinite(data[:, i])]
        limits = fit_imr(good[:, None], nsigmas=NSIGMAS, sigma="larger")
        center.append(float(limits.center[0]))
        sigma.append(float(limits.sigma[0]))
        mr_bar.append(float(limits.mr_bar[0]))
        fitted = fit_shift_live(good)
        if fitted is not None:
            watched.append(j)
            scales.append(fitted[0])
            thresholds.append(fitted[1])
    shift = None
    if watched:
        shift = ShiftParams(
            channels=len(modelled),
            watched=tuple(watched),
            fast=FAST,
            slow=SLOW,
            scale=tuple(scales),
            threshold=max(thresholds),
            method=f"learnt on the device from {data.shape[0]} rows",
        )
    return LearnedLimits(
        channels=list(channels),
        classes=classes,
        modelled=[channels[i] for i in modelled],
        center=center,
        sigma=sigma,
        mr_bar=mr_bar,
        shift=shift,
        rows=int(data.shape[0]),
        learned_s=round(learned_s, 3),
        learned_at=now if math.isfinite(now) else 0.0,
    )


def fit_shift_live(good: FloatArray) -> tuple[float, float] | None:
    """(scale, threshold) of one tag's shift detector, fitted by running it over the tag's
    good readings; None when fast minus baseline never moved (nothing to watch)."""
    end = round(good.size * FIT_FRACTION)
    if end < 6 or good.size - end < 3:
        return None
    unit = ShiftParams(channels=1, watched=(0,), fast=FAST, slow=SLOW, scale=(1.0,), threshold=1.0)
    detector = ShiftDetector(unit)
    drift = np.array([detector.update(good[k : k + 1]).value for k in range(good.size)])
    warm = min(round(1.0 / SLOW), end // 3)
    fit = drift[warm:end]
    scale = float(np.sqrt(np.mean(fit * fit)))
    if not scale > 1e-12 * max(1.0, float(np.abs(good).max())):
        return None
    threshold = float(drift[end:].max()) / scale * MARGIN
    return scale, max(threshold, MIN_SHIFT_THRESHOLD)
