"""A drift-tolerant level-shift detector: fast EWMA against a slow, frozen-when-alarmed baseline.

Why a second detector beside the VAE: a process that warms up or wears drifts slowly in normal
operation, so fixed control limits (the I-MR chart) fill with false alarms, while a moderate
but sustained step of one tag (a valve closing by a few percent) is too small for a
reconstruction error over a short window. This detector follows the slow drift and keeps
the step:

    f_c = f_c + fast * (x_c - f_c)        the short-term level of channel c
    b_c = b_c + slow * (x_c - b_c)        its baseline, NOT updated while the alarm holds
    z_c = |f_c - b_c| / scale_c           the shift in units of its normal size
    score = max over watched channels of z_c, against `threshold`

Until a channel has `1 / w` readings, each EWMA of weight `w` is the running mean of its
readings so far (weight `1 / n` at the n-th reading): a cold start does not take one noisy
first reading as the baseline for hundreds of rows, which would raise false alarms right after
every agent start. The baseline tracks drifts slower than about `1 / slow` rows; a step
raises the line's shift alarm (debounced in the line's alarm table, agent.pipeline.line: after
`raise_after` rows above the threshold), and while that alarm holds the line tells the detector
so (`observe_alarm`): the baseline freezes at the level before the step, and the alarm holds
until the tag comes back (`clear_after` rows below `clear_ratio` x the threshold, the site's
hysteresis, as for the VAE alarm) -- or, after `max_freeze` rows of alarm, the baseline accepts
the new level, so a permanent change ends as one long alarm instead of a stuck one. O(1) per
sample, numpy only.

Channels that drift too fast for any baseline (set with `--relative` at export, such as
temperatures that climb through a run) and channels constant in training (no scale) are not
watched. The parameters (`ShiftParams`) are fitted at export (`fit_shift`) and carried in the
bundle as `detector.shift`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from agent.bundles.manifest import ShiftParams
from agent.types import Score

FloatArray = npt.NDArray[np.float64]


class ShiftDetector:
    """Fast EWMA minus a frozen-when-alarmed slow baseline, per watched channel.

    Examples
    --------
    >>> from agent.pipeline.events.alarms import DebouncedAlarm
    >>> p = ShiftParams(channels=2, watched=(0,), fast=0.2, slow=0.01, scale=(1.0,),
    ...                 threshold=2.0)
    >>> det, alarm = ShiftDetector(p), DebouncedAlarm(raise_after=3, clear_after=3)
    >>> def step(row):  # what the line does with each row: score, alarm, hold the baseline
    ...     score = det.update(np.array(row))
    ...     alarm.level(score.value, score.threshold, clear_ratio=1.0)
    ...     det.observe_alarm(alarm.active)
    ...     return alarm.active
    >>> quiet = [step([0.0, 5.0]) for _ in range(50)]
    >>> any(step([0.0, 9.0]) for _ in range(20))  # not watched
    False
    >>> [step([5.0, 0.0]) for _ in range(40)][-1]  # a step of 5 scales: raised, and held
    True
    >>> back = [step([0.0, 0.0]) for _ in range(60)]
    >>> alarm.active
    False
    """

    name = "shift"

    def __init__(self, params: ShiftParams) -> None:
        self.params = params
        self._idx = np.asarray(params.watched, dtype=np.intp)
        self._scale = np.asarray(params.scale, dtype=np.float64)
        self._fast: FloatArray | None = None
        self._base: FloatArray | None = None
        self._seen = np.zeros(len(self._idx))  # good readings per watched channel (warm-up)
        self._alarmed = False  # the line's shift alarm after the last row
        self._frozen = 0
        #: Each channel's shift on the last row, in its scale (0 where not watched).
        self.last_z = np.zeros(params.channels)

    def observe_alarm(self, active: bool) -> None:
        """The line's shift alarm after this row: while it holds, the baseline does not learn
        (for at most `max_freeze` rows), so the step is not taken as the new normal."""
        self._alarmed = active
        self._frozen = self._frozen + 1 if active else 0

    def reset(self) -> None:
        """Forget the levels and the hold (the next row starts a new baseline)."""
        self._fast = self._base = None
        self._seen = np.zeros(len(self._idx))
        self._alarmed = False
        self._frozen = 0

    def update(self, row: FloatArray) -> Score:
        """Take one raw row (all channels; NaN = no reading, that channel keeps its levels)."""
        if row.shape != (self.params.channels,):
            raise ValueError(f"row has shape {row.shape}, expected ({self.params.channels},)")
        x = row[self._idx].astype(np.float64)
        ok = np.isfinite(x)
        if self._fast is None or self._base is None:
            self._fast = np.where(ok, x, np.nan)
            self._base = self._fast.copy()
        fresh = ok & np.isnan(self._fast)  # a channel's first good reading starts its levels
        self._fast[fresh] = self._base[fresh] = x[fresh]
        p = self.params
        self._seen = self._seen + ok
        warm = 1.0 / np.maximum(self._seen, 1.0)  # the running mean while warming up
        fast, slow = np.maximum(p.fast, warm), np.maximum(p.slow, warm)
        self._fast = np.where(ok, self._fast + fast * (x - self._fast), self._fast)
        if not self._alarmed or self._frozen >= p.max_freeze:
            self._base = np.where(ok, self._base + slow * (x - self._base), self._base)
        z = np.abs(self._fast - self._base) / self._scale
        z = np.where(np.isfinite(z), z, 0.0)
        self.last_z = np.zeros(p.channels)
        self.last_z[self._idx] = z
        contributions = np.zeros(p.channels)
        total = float(z.sum())
        if total > 0:
            contributions[self._idx] = z / total
        return Score(float(z.max()), p.threshold, tuple(contributions))

    def state(self) -> dict[str, object]:
        """The running state, JSON-able (NaN levels as None), to survive a restart."""

        def levels(a: FloatArray | None) -> list[float | None] | None:
            return None if a is None else [None if math.isnan(v) else float(v) for v in a]

        return {
            "fast": levels(self._fast),
            "base": levels(self._base),
            "seen": [float(n) for n in self._seen],
            "frozen": self._frozen,
            "alarmed": self._alarmed,
        }

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`."""

        def levels(raw: object) -> FloatArray | None:
            if raw is None:
                return None
            if not isinstance(raw, list) or len(raw) != len(self._idx):
                raise ValueError("shift state: levels must list one value per watched channel")
            return np.array([math.nan if v is None else float(v) for v in raw])

        self._fast, self._base = levels(state["fast"]), levels(state["base"])
        seen = state.get("seen")
        if seen is None:  # a state saved before the warm-up count: take it as warmed up
            self._seen = np.full(len(self._idx), 1.0 / self.params.slow)
        elif isinstance(seen, list) and len(seen) == len(self._idx):
            self._seen = np.array([float(n) for n in seen])
        else:
            raise ValueError("shift state: seen must list one count per watched channel")
        self._frozen = int(str(state["frozen"]))
        self._alarmed = bool(state["alarmed"])
