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

Conventions (the tests in `tests/unit/core/test_spc_rules.py` pin each one):

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


_STATE_VERSION = 1
# Run counters, one row each; the flag that extends each run sits in the same row of `_flags`.
# They saturate at _RUN_CAP (uint8): every rule only asks whether a run has reached 15.
_COUNTERS = ("up_run", "down_run", "rise_run", "fall_run", "alt_run", "within_run", "out_run")
_RUN_NEEDED = (9, 9, 5, 5, 13, 15, 8)
_RUN_CAP = 100
# Zone windows (rows 7..10 of `_flags`), bit 0 the newest point: beyond 1σ up/down over the
# last five points (4 needed), beyond 2σ up/down over the last three (2 needed).
_WINDOWS = ("b_up", "b_down", "a_up", "a_down")
_WINDOW_BITS = (0b11111, 0b11111, 0b111, 0b111)
_WINDOW_NEEDED = (4, 4, 2, 2)
_PAIRED_ROWS = (0, 2, 7, 9, 11)
# Rows of the result table `_hits` that hold each rule's outcome once the pairs are merged.
_SOURCE_ROW = {
    "N1": 13, "N2": 0, "N3": 2, "N4": 4, "N5": 11, "N6": 9, "N7": 5, "N8": 6,
    "WE1": 13, "WE2": 11, "WE3": 9, "WE4": 7,
}  # fmt: skip


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

    All state is a few stacked arrays (uint8 run counters, bit-packed windows), updated in
    place by about thirty numpy calls per point whatever the channel count, so several plots
    of a chart fed through one engine (as one wider row) cost little more than one. Integer
    operands are full-shape arrays of one dtype: numpy's broadcast and casting paths are
    several times slower than its contiguous loops at these sizes.

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
        self._select = np.array([_SOURCE_ROW[i] for i in self.ids], dtype=np.intp)
        need = set(self.ids)
        self._n1 = bool(need & {"N1", "WE1"})
        self._side = bool(need & {"N2", "WE4"})
        self._trend = bool(need & {"N3", "N4"})
        self._zones = bool(need & {"N5", "N6", "WE2", "WE3"})
        self._bands = bool(need & {"N7", "N8"})
        c = n_channels
        self._prev = np.full((2, c), np.nan)  # the previous z and its negative
        self._prev_move = np.zeros((2, c), dtype=bool)  # the previous change: fell, rose
        self._runs = np.zeros((len(_COUNTERS), c), dtype=np.uint8)
        self._windows = np.zeros((len(_WINDOWS), c), dtype=np.uint8)
        # Flags: up, down, rise, fall, alternates, within 1σ, beyond 1σ | b_up b_down a_up a_down
        self._flags = np.zeros((11, c), dtype=bool)
        self._flag_bytes = self._flags.view(np.uint8)
        self._hits = np.zeros((14, c), dtype=bool)
        self._signed = np.empty((2, c))
        self._abs = np.empty(c)
        self._delta = np.empty((2, c))
        self._pair = np.empty((2, c), dtype=bool)
        self._count = np.empty((len(_WINDOWS), c), dtype=np.uint8)
        self._moved = np.empty(c, dtype=bool)
        self._nan = np.empty(c, dtype=bool)

        def column(values: tuple[int, ...]) -> npt.NDArray[np.uint8]:
            return np.repeat(np.array(values, dtype=np.uint8)[:, None], c, axis=1)

        # Full-shape operands: comparing with a scalar or a small broadcast array is slower.
        self._zero = np.zeros((2, c))
        self._one_sigma = np.ones(c)
        self._three_sigma = np.full(c, 3.0)
        self._levels = np.repeat(np.array([1.0, 2.0])[:, None, None], c, axis=2)
        self._one = column((1,) * len(_COUNTERS))
        self._cap = column((_RUN_CAP,) * len(_COUNTERS))
        self._needed = column(_RUN_NEEDED)
        self._eight = column((8, 8))
        self._window_bits = column(_WINDOW_BITS)
        self._window_needed = column(_WINDOW_NEEDED)

    def reset(self) -> None:
        """Forget every run in progress (as after a gap on every channel)."""
        self._prev[:] = np.nan
        self._prev_move[:] = False
        self._runs[:] = 0
        self._windows[:] = 0

    def update(self, z: FloatArray, beyond: BoolArray | None = None) -> BoolArray:
        """Feed one point per channel; return hits, shape (len(ids), n_channels).

        `beyond`, when given, replaces |z| > 3 for N1/WE1 (charts whose limits are clipped).
        """
        z = np.asarray(z, dtype=np.float64)
        if z.shape != (self.n_channels,):
            raise ValueError(f"z must have shape ({self.n_channels},), got {z.shape}")
        if not self.ids:
            return np.zeros((0, self.n_channels), dtype=bool)
        flags, hits, runs, signed, a = self._flags, self._hits, self._runs, self._signed, self._abs
        np.abs(z, out=a)
        if self._side or self._zones or self._trend:
            np.copyto(signed[0], z)
            np.negative(z, out=signed[1])
            if self._side:
                np.greater(signed, self._zero, out=flags[0:2])
            if self._zones:
                np.greater(signed, self._levels, out=flags[7:11].reshape(2, 2, -1))
        if self._trend:
            # [z - prev, prev - z] > 0 is [rose, fell]; NaN at or after a gap is neither.
            np.subtract(signed, self._prev, out=self._delta)
            np.copyto(self._prev, signed)
            np.greater(self._delta, self._zero, out=flags[2:4])
            np.bitwise_and(flags[2:4], self._prev_move, out=self._pair)
            np.bitwise_or(self._pair[0], self._pair[1], out=flags[4])  # opposite to the last
            np.copyto(self._prev_move[0], flags[3])
            np.copyto(self._prev_move[1], flags[2])
        if self._bands:
            np.less_equal(a, self._one_sigma, out=flags[5])  # NaN <= 1 is False: a gap
            np.greater(a, self._one_sigma, out=flags[6])
        np.add(runs, self._one, out=runs)
        np.multiply(runs, self._flag_bytes[0:7], out=runs)
        np.minimum(runs, self._cap, out=runs)
        if self._trend:  # a change that does not alternate starts a new alternation of one
            np.bitwise_or(flags[2], flags[3], out=self._moved)
            np.maximum(runs[4], self._moved.view(np.uint8), out=runs[4])
        np.greater_equal(runs, self._needed, out=hits[0:7])
        np.greater_equal(runs[0:2], self._eight, out=hits[7:9])
        if self._zones:
            w = self._windows
            np.add(w, w, out=w)  # shift the window one point left
            np.bitwise_or(w, self._flag_bytes[7:11], out=w)
            np.bitwise_and(w, self._window_bits, out=w)
            np.isnan(z, out=self._nan)
            if self._nan.any():  # a gap empties the windows (the counters reset on their own)
                w[:, self._nan] = 0
            np.bitwise_count(w, out=self._count)
            np.greater_equal(self._count, self._window_needed, out=hits[9:13])
            np.bitwise_and(hits[9:13], flags[7:11], out=hits[9:13])  # the newest point is in
        if self._n1:
            if beyond is None:
                np.greater(a, self._three_sigma, out=hits[13])
            else:
                np.equal(z, z, out=hits[13])  # not a gap: no rule fires on a NaN
                np.bitwise_and(hits[13], beyond, out=hits[13])
        # Merge the up/down pairs (7, 8), (9, 10) ... into the first row of each, one row per
        # call: a strided two-row view takes numpy's slow iterator path.
        for row in _PAIRED_ROWS:
            np.bitwise_or(hits[row], hits[row + 1], out=hits[row])
        return hits[self._select]

    def state(self) -> dict[str, Any]:
        """The runs in progress as a JSON-able dict (NaN as None), for `restore` after a restart."""

        def floats(x: FloatArray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in x]

        return {
            "version": _STATE_VERSION,
            "ids": list(self.ids),
            "n_channels": self.n_channels,
            "prev": floats(self._prev[0]),
            "prev_change": [int(r) - int(f) for f, r in self._prev_move.T],
            **{k: [int(v) for v in self._runs[i]] for i, k in enumerate(_COUNTERS)},
            **{k: [int(v) for v in self._windows[i]] for i, k in enumerate(_WINDOWS)},
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
            change = np.array(state["prev_change"], dtype=np.int64)
            runs = np.minimum(np.array([state[k] for k in _COUNTERS], dtype=np.int64), _RUN_CAP)
            windows = np.array([state[k] for k in _WINDOWS], dtype=np.uint8)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"run-rule state is malformed: {exc}") from None
        c = self.n_channels
        if prev.shape != (c,) or change.shape != (c,) or runs.shape[1:] != (c,):
            raise ValueError(f"run-rule state arrays must each hold {c} values")
        if windows.shape[1:] != (c,):
            raise ValueError(f"run-rule state arrays must each hold {c} values")
        if runs.min(initial=0) < 0 or windows.max(initial=0) > 0b11111:
            raise ValueError("run-rule state holds negative runs or windows wider than 5 points")
        if not np.isin(change, (-1, 0, 1)).all():
            raise ValueError("run-rule state prev_change must hold -1, 0 or 1")
        self._prev[0] = prev
        self._prev[1] = -prev
        self._prev_move[0] = change == -1
        self._prev_move[1] = change == 1
        self._runs[:] = runs
        self._windows[:] = windows


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
    if not engine.ids:
        return []
    # Hits are gathered a block of points at a time: one nonzero per block, not per point.
    block = max(1, (1 << 20) // (len(engine.ids) * table.shape[1]))
    buffer = np.empty((block, len(engine.ids), table.shape[1]), dtype=bool)
    found: list[Violation] = []
    for start in range(0, table.shape[0], block):
        stop = min(start + block, table.shape[0])
        for t in range(start, stop):
            buffer[t - start] = engine.update(table[t], None if flags is None else flags[t])
        for t, row, channel in zip(*np.nonzero(buffer[: stop - start]), strict=True):
            found.append(Violation(engine.ids[row], start + int(t), int(channel)))
    return found
