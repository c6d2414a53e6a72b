"""TimeToLimit for every tag of a line: the drift forecast (agent.core.forecast), kept live. Pure.

`DriftForecaster.update` takes each clock row; it keeps the last `window` rows and, every
`every` rows, forecasts each tag whose straight-line rise over the window is large enough
to call it a drift (one vectorised slope for every tag first, so a line of thousands of tags
fits only the few that move). Between two refits it returns the last forecasts, so a sink sees
a value on every row. The limits are the bundle's SPC limits and the tag map's spec limits.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.core.forecast import MIN_RISE, Forecast, Limit, forecast, limits_of

FloatArray = npt.NDArray[np.float64]
D2 = 1.128  # d2 of moving ranges of span 2: short-term sigma = MR-bar / d2
WINDOW = 64
EVERY = 4


class DriftForecaster:
    """The live drift forecasts of a line's tags."""

    def __init__(
        self,
        channels: list[str],
        low: FloatArray,
        high: FloatArray,
        mr_bar: FloatArray,
        spec: Mapping[str, tuple[float | None, float | None]] | None = None,
        window: int = WINDOW,
        every: int = EVERY,
    ) -> None:
        self.channels = channels
        self.spec = dict(spec or {})
        self.limits: list[list[Limit]] = []
        self.noise = np.ones(len(channels))
        self.set_limits(low, high, mr_bar)
        self.every = every
        self.window = window
        self._ts: collections.deque[float] = collections.deque(maxlen=window)
        self._rows: collections.deque[FloatArray] = collections.deque(maxlen=window)
        self._count = 0
        self.last: dict[str, Forecast] = {}

    def set_limits(self, low: FloatArray, high: FloatArray, mr_bar: FloatArray) -> None:
        """New SPC limits and short-term spread (a new bundle); the spec limits stay."""
        self.limits = [
            limits_of(float(low[i]), float(high[i]), *self.spec.get(c, (None, None)))
            for i, c in enumerate(self.channels)
        ]
        self.noise = np.maximum(np.asarray(mr_bar, dtype=np.float64) / D2, 1e-12)

    def reset(self) -> None:
        """Forget the rows and the forecasts."""
        self._ts.clear()
        self._rows.clear()
        self._count = 0
        self.last = {}

    def state(self) -> dict[str, Any]:
        """The rows it fits and its last forecasts, JSON-able (a snapshot's `forecast`)."""
        return {
            "ts": list(self._ts),
            "rows": [r.tolist() for r in self._rows],
            "count": self._count,
            "last": [
                {**dataclasses.asdict(f), "limit": dataclasses.asdict(f.limit)}
                for f in self.last.values()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a saved `state()`; ValueError if its rows are of other channels."""
        rows = [np.asarray(r, dtype=np.float64) for r in state["rows"]]
        if any(r.shape != (len(self.channels),) for r in rows) or len(rows) != len(state["ts"]):
            raise ValueError("the saved forecast rows are of other channels")
        self.reset()
        self._ts.extend(float(t) for t in state["ts"])
        self._rows.extend(rows)
        self._count = int(state["count"])
        last = [Forecast(**{**f, "limit": Limit(**f["limit"])}) for f in state["last"]]
        self.last = {f.tag: f for f in last if f.tag in self.channels}

    def update(self, ts: float, row: FloatArray) -> dict[str, Forecast]:
        """Take one row; the forecasts of the tags that drift (refitted every `every` rows)."""
        self._ts.append(ts)
        self._rows.append(row)
        self._count += 1
        if self._count % self.every == 0 and 2 * len(self._rows) >= self.window:
            self.last = self._refit()
        return self.last

    def _refit(self) -> dict[str, Forecast]:
        t = np.asarray(self._ts, dtype=np.float64)
        x = np.vstack(self._rows)
        centred = t - t.mean()
        sxx = float(centred @ centred)
        if sxx <= 0.0:
            return {}
        finite = np.isfinite(x)
        means = np.where(finite, x, 0.0).sum(axis=0) / np.maximum(finite.sum(axis=0), 1)
        filled = np.where(finite, x, means)
        slope = centred @ (filled - filled.mean(axis=0)) / sxx
        rise = np.abs(slope) * float(t[-1] - t[0])
        found = {}
        # The straight line over the whole window understates a drift that began inside it:
        # the prefilter lets through half the rise the forecast itself asks for.
        for i in np.nonzero(2.0 * rise >= MIN_RISE * self.noise)[0]:
            tag = self.channels[i]
            f = forecast(tag, t, x[:, i], self.limits[i], float(self.noise[i]))
            if f is not None:
                found[tag] = f
        return found
