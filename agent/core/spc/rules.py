"""Run rules (Nelson's eight tests, the Western Electric four), streaming across channels.

Every rule looks at `z`, the plotted statistic in units of its own sigma from the centre line
(`ChartPoint.z`), so one engine serves every chart. The definitions follow Nelson (1984) as
Minitab documents its "tests for special causes", and the Western Electric handbook (1956):

====  =====================================================================================
N1    one point beyond 3σ (or beyond the chart's own limits, when `beyond` is given)
N2    nine points in a row on the same side of the centre line
N3    six points in a row steadily increasing, or steadily decreasing (five rises in a row)
N4    fourteen points in a row alternating up and down (thirteen alternating changes)
N5    two out of three points in a row beyond 2σ, on the same side
N6    four out of five points in a row beyond 1σ, on the same side
N7    fifteen points in a row within 1σ of the centre line (either side)
N8    eight points in a row beyond 1σ (either side, none within 1σ)
WE1   = N1;  WE2 = N5;  WE3 = N6
WE4   eight points in a row on the same side of the centre line
====  =====================================================================================

Conventions (the tests in `tests/unit/test_spc_rules.py` pin each one):

- **Index.** A hit is reported at the point that completes the pattern: the last point of the
  run or window. A run that goes on completes the pattern again at every further point, so N2
  fires at the 9th, 10th, 11th... point on one side (Minitab's convention: it flags every point
  that fails the test), and the count restarts when the run breaks.
- **N5 and N6** flag a point only when that point is itself beyond 2σ (1σ) on the side in
  question; a window that still holds two old points beyond 2σ does not flag a new point
  inside 2σ, because that point did not complete anything.
- **Equality.** "Beyond kσ" is strict, |z| > k; "within 1σ" is its complement, |z| ≤ 1, so
  every point is one or the other. A point exactly on the centre line (z = 0) is on neither
  side and breaks N2/WE4 runs. Two equal consecutive points are neither a rise nor a fall and
  break N3 and N4.
- **NaN is a gap** (a sample that was not measured): no rule fires on it, and it breaks every
  run and empties every window, because the points either side of it are not "in a row".
  An infinite z (a chart whose sigma is 0) is an ordinary point beyond every limit.

`RunRules.update` is O(1) per point per channel: run counters and bit-packed windows of the
last three and five zone flags, updated in place with numpy for all channels in one call.
`find_violations` (batch) runs the same engine point by point, so batch equals streaming.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_IntArray = npt.NDArray[np.int64]
_ByteArray = npt.NDArray[np.uint8]

NELSON: tuple[str, ...] = ("N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8")
WESTERN_ELECTRIC: tuple[str, ...] = ("WE1", "WE2", "WE3", "WE4")
ALL_RULES: tuple[str, ...] = NELSON + WESTERN_ELECTRIC
GROUPS: dict[str, tuple[str, ...]] = {
    "nelson": NELSON,
    "we": WESTERN_ELECTRIC,
    "all": ALL_RULES,
    "none": (),
}
DEFAULT_RULES = "we"

DESCRIPTIONS: dict[str, str] = {
    "N1": "1 point beyond 3 sigma",
    "N2": "9 points in a row on one side of the centre line",
    "N3": "6 points in a row steadily increasing or decreasing",
    "N4": "14 points in a row alternating up and down",
    "N5": "2 of 3 points beyond 2 sigma on the same side",
    "N6": "4 of 5 points beyond 1 sigma on the same side",
    "N7": "15 points in a row within 1 sigma",
    "N8": "8 points in a row beyond 1 sigma on either side",
    "WE1": "1 point beyond 3 sigma",
    "WE2": "2 of 3 points beyond 2 sigma on the same side",
    "WE3": "4 of 5 points beyond 1 sigma on the same side",
    "WE4": "8 points in a row on one side of the centre line",
}


def _window_table(width: int, needed: int) -> BoolArray:
    """Hit table over a `width`-bit window (bit 0 = newest): newest set and `needed` set."""
    return np.array(
        [(h & 1) == 1 and bin(h).count("1") >= needed for h in range(1 << width)], dtype=bool
    )


_TWO_OF_THREE = _window_table(3, 2)
_FOUR_OF_FIVE = _window_table(5, 4)
_STATE_VERSION = 1
_COUNTERS = ("up_run", "down_run", "rise_run", "fall_run", "alt_run", "within_run", "out_run")
_WINDOWS = ("a_up", "a_down", "b_up", "b_down")


@dataclass(frozen=True)
class Violation:
    """One rule hit: rule id, the index of the point that completed the pattern, channel."""

    rule: str
    index: int
    channel: int = 0


@dataclass(frozen=True)
class RuleSet:
    """An ordered set of enabled rule ids (canonical order: N1..N8, WE1..WE4)."""

    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [i for i in self.ids if i not in ALL_RULES]
        if unknown:
            raise ValueError(f"unknown rule id {unknown[0]!r}; valid ids: {', '.join(ALL_RULES)}")
        if self.ids != tuple(i for i in ALL_RULES if i in self.ids):
            raise ValueError("rule ids must be unique and in canonical order; use rule_set()")

    def __contains__(self, rule: object) -> bool:
        return rule in self.ids

    def __str__(self) -> str:
        return ",".join(self.ids) if self.ids else "none"


def rule_set(spec: str) -> RuleSet:
    """Parse "nelson" | "we" | "all" | "none" | a comma list such as "N1,N2,WE3" (any case).

    Examples
    --------
    >>> rule_set("we").ids
    ('WE1', 'WE2', 'WE3', 'WE4')
    >>> rule_set("n2, N1").ids
    ('N1', 'N2')
    """
    chosen: set[str] = set()
    tokens = [t.strip() for t in spec.split(",")]
    if not any(tokens):
        raise ValueError(
            f"empty rule set; give nelson, we, all, none or ids from {', '.join(ALL_RULES)}"
        )
    for token in tokens:
        if token.lower() in GROUPS:
            chosen.update(GROUPS[token.lower()])
        elif token.upper() in ALL_RULES:
            chosen.add(token.upper())
        else:
            raise ValueError(
                f"unknown rule {token!r}; valid: nelson, we, all, none, or {', '.join(ALL_RULES)}"
            )
    return RuleSet(tuple(i for i in ALL_RULES if i in chosen))


class RunRules:
    """Streaming run-rule engine for `n_channels` channels: O(1) per point per channel.

    Examples
    --------
    >>> engine = RunRules(rule_set("N2"), n_channels=1)
    >>> hits = [bool(engine.update(np.array([0.5]))[0, 0]) for _ in range(10)]
    >>> hits.index(True), hits[-1]
    (8, True)
    """

    def __init__(self, rules: RuleSet, n_channels: int) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be at least 1, got {n_channels}")
        self.rules = rules
        self.n_channels = n_channels
        self.ids: tuple[str, ...] = rules.ids
        self._row = {rule: k for k, rule in enumerate(self.ids)}
        need = set(self.ids)
        self._side = bool(need & {"N2", "WE4"})
        self._trend = bool(need & {"N3", "N4"})
        self._zone_a = bool(need & {"N5", "WE2"})
        self._zone_b = bool(need & {"N6", "WE3"})
        self._bands = bool(need & {"N7", "N8"})
        c = n_channels
        self._prev = np.full(c, np.nan)
        self._prev_sign = np.full(c, np.nan)
        self._runs: dict[str, _IntArray] = {k: np.zeros(c, dtype=np.int64) for k in _COUNTERS}
        self._win: dict[str, _ByteArray] = {k: np.zeros(c, dtype=np.uint8) for k in _WINDOWS}
        self._abs = np.empty(c)
        self._diff = np.empty(c)
        self._flag = np.empty(c, dtype=bool)
        self._flag2 = np.empty(c, dtype=bool)
        self._nan = np.empty(c, dtype=bool)
        self._top = np.empty(c, dtype=np.int64)

    def reset(self) -> None:
        """Forget every run in progress (as after a gap on every channel)."""
        self._prev[:] = np.nan
        self._prev_sign[:] = np.nan
        for run in self._runs.values():
            run[:] = 0
        for win in self._win.values():
            win[:] = 0

    def _count(self, run: _IntArray, flag: BoolArray) -> None:
        """run = run + 1 where flag else 0, in place."""
        np.add(run, 1, out=run)
        np.multiply(run, flag, out=run)

    def _push(self, win: _ByteArray, flag: BoolArray, width_mask: int) -> None:
        """Shift the newest flag into a bit-packed window, in place."""
        np.left_shift(win, 1, out=win)
        np.bitwise_or(win, flag, out=win)
        np.bitwise_and(win, width_mask, out=win)

    def _set(self, hits: BoolArray, rule: str, other: str, value: BoolArray) -> None:
        """Write one result into the rows of `rule` and its equivalent `other`, if enabled."""
        for name in (rule, other):
            row = self._row.get(name)
            if row is not None:
                hits[row] = value

    def update(self, z: FloatArray, beyond: BoolArray | None = None) -> BoolArray:
        """Feed one point per channel; return hits, shape (len(ids), n_channels).

        `beyond`, when given, replaces |z| > 3 for N1/WE1 (charts whose limits are clipped).
        """
        z = np.asarray(z, dtype=np.float64)
        if z.shape != (self.n_channels,):
            raise ValueError(f"z must have shape ({self.n_channels},), got {z.shape}")
        hits = np.zeros((len(self.ids), self.n_channels), dtype=bool)
        if not self.ids:
            return hits
        a, f, f2, runs, win = self._abs, self._flag, self._flag2, self._runs, self._win
        np.abs(z, out=a)
        if "N1" in self._row or "WE1" in self._row:
            if beyond is None:
                np.greater(a, 3.0, out=f)
                self._set(hits, "N1", "WE1", f)
            else:
                np.equal(z, z, out=f)  # not a gap: no rule fires on a NaN
                self._set(hits, "N1", "WE1", np.logical_and(f, beyond, out=f))
        if self._side:
            np.greater(z, 0.0, out=f)
            self._count(runs["up_run"], f)
            np.less(z, 0.0, out=f)
            self._count(runs["down_run"], f)
            np.maximum(runs["up_run"], runs["down_run"], out=self._top)
            if "N2" in self._row:
                np.greater_equal(self._top, 9, out=hits[self._row["N2"]])
            if "WE4" in self._row:
                np.greater_equal(self._top, 8, out=hits[self._row["WE4"]])
        if self._trend:
            self._update_trend(z, hits)
        if self._zone_a:
            np.greater(z, 2.0, out=f)
            self._push(win["a_up"], f, 0b111)
            np.less(z, -2.0, out=f)
            self._push(win["a_down"], f, 0b111)
            np.take(_TWO_OF_THREE, win["a_up"], out=f)
            np.take(_TWO_OF_THREE, win["a_down"], out=f2)
            self._set(hits, "N5", "WE2", np.bitwise_or(f, f2, out=f))
        if self._zone_b:
            np.greater(z, 1.0, out=f)
            self._push(win["b_up"], f, 0b11111)
            np.less(z, -1.0, out=f)
            self._push(win["b_down"], f, 0b11111)
            np.take(_FOUR_OF_FIVE, win["b_up"], out=f)
            np.take(_FOUR_OF_FIVE, win["b_down"], out=f2)
            self._set(hits, "N6", "WE3", np.bitwise_or(f, f2, out=f))
        if self._bands:
            np.less_equal(a, 1.0, out=f)  # NaN <= 1 is False: a gap breaks the run
            self._count(runs["within_run"], f)
            np.greater(a, 1.0, out=f)
            self._count(runs["out_run"], f)
            if "N7" in self._row:
                np.greater_equal(runs["within_run"], 15, out=hits[self._row["N7"]])
            if "N8" in self._row:
                np.greater_equal(runs["out_run"], 8, out=hits[self._row["N8"]])
        if self._zone_a or self._zone_b:
            np.isnan(z, out=self._nan)
            if self._nan.any():  # a gap empties the windows (counters reset on their own)
                for w in win.values():
                    w[self._nan] = 0
        return hits

    def _update_trend(self, z: FloatArray, hits: BoolArray) -> None:
        """N3 and N4: count rises, falls and alternations of consecutive points."""
        d, f, f2, runs = self._diff, self._flag, self._flag2, self._runs
        np.subtract(z, self._prev, out=d)  # NaN after (or at) a gap: neither rise nor fall
        np.copyto(self._prev, z)
        np.greater(d, 0.0, out=f)
        self._count(runs["rise_run"], f)
        np.less(d, 0.0, out=f2)
        self._count(runs["fall_run"], f2)
        if "N3" in self._row:
            np.maximum(runs["rise_run"], runs["fall_run"], out=self._top)
            np.greater_equal(self._top, 5, out=hits[self._row["N3"]])
        if "N4" in self._row:
            alt = runs["alt_run"]
            np.bitwise_or(f, f2, out=f)  # a real change: starts a new alternation of one
            np.sign(d, out=d)  # signs, not values: a product of two tiny changes underflows
            np.multiply(self._prev_sign, d, out=self._prev_sign)
            np.less(self._prev_sign, 0.0, out=f2)  # opposite sign to the previous change
            np.add(alt, 1, out=alt)
            np.multiply(alt, f2, out=alt)
            np.maximum(alt, f, out=alt)
            np.greater_equal(alt, 13, out=hits[self._row["N4"]])
            np.copyto(self._prev_sign, d)

    def state(self) -> dict[str, Any]:
        """The runs in progress as a JSON-able dict (NaN as None), for `restore` after a restart."""

        def floats(x: FloatArray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in x]

        return {
            "version": _STATE_VERSION,
            "ids": list(self.ids),
            "n_channels": self.n_channels,
            "prev": floats(self._prev),
            "prev_sign": floats(self._prev_sign),
            **{k: [int(v) for v in run] for k, run in self._runs.items()},
            **{k: [int(v) for v in w] for k, w in self._win.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a `state()` of an engine with the same rules and channel count."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"run-rule state version {state.get('version')!r} is not supported")
        if tuple(state.get("ids", ())) != self.ids or state.get("n_channels") != self.n_channels:
            raise ValueError(
                f"run-rule state is for rules {state.get('ids')} on {state.get('n_channels')} "
                f"channels, not {list(self.ids)} on {self.n_channels}"
            )
        try:
            prev = np.array([np.nan if v is None else v for v in state["prev"]], dtype=np.float64)
            psign = [np.nan if v is None else v for v in state["prev_sign"]]
            prev_sign = np.array(psign, dtype=np.float64)
            runs = {k: np.array(state[k], dtype=np.int64) for k in _COUNTERS}
            wins = {k: np.array(state[k], dtype=np.uint8) for k in _WINDOWS}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"run-rule state is malformed: {exc}") from None
        arrays: list[npt.NDArray[Any]] = [prev, prev_sign, *runs.values(), *wins.values()]
        if any(x.shape != (self.n_channels,) for x in arrays):
            raise ValueError(f"run-rule state arrays must each hold {self.n_channels} values")
        self._prev[:] = prev
        self._prev_sign[:] = prev_sign
        for k in _COUNTERS:
            self._runs[k][:] = runs[k]
        for k in _WINDOWS:
            self._win[k][:] = wins[k]


def find_violations(
    z: FloatArray, rules: RuleSet, beyond: BoolArray | None = None
) -> list[Violation]:
    """Every hit of `rules` in a whole series z, shape (T,) or (T, C), ordered by index.

    Runs the streaming engine point by point, so it agrees with `RunRules.update` exactly.

    Examples
    --------
    >>> find_violations(np.array([0.0, 3.5, 0.2]), rule_set("N1"))
    [Violation(rule='N1', index=1, channel=0)]
    """
    series = np.asarray(z, dtype=np.float64)
    if series.ndim not in (1, 2):
        raise ValueError(f"z must be 1-D (T,) or 2-D (T, C), got shape {series.shape}")
    table = series[:, np.newaxis] if series.ndim == 1 else series
    flags = None
    if beyond is not None:
        flags = np.asarray(beyond, dtype=bool)
        if flags.shape != series.shape:
            raise ValueError(f"beyond must have the shape of z {series.shape}, got {flags.shape}")
        flags = flags.reshape(table.shape)
    if table.shape[0] == 0 or table.shape[1] == 0:
        return []
    engine = RunRules(rules, table.shape[1])
    found: list[Violation] = []
    for t in range(table.shape[0]):
        hits = engine.update(table[t], None if flags is None else flags[t])
        for row, channel in zip(*np.nonzero(hits), strict=True):
            found.append(Violation(engine.ids[row], t, int(channel)))
    return found
