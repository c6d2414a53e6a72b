"""The streaming rule engine against a slow, obvious reference, on random sequences.

The reference below re-reads the whole history at every point, exactly as the rules are worded
("nine points in a row", "two out of three"), with the module's stated conventions: a NaN is a
gap that no pattern may span, beyond is strict, within 1 sigma is inclusive, ties are neither
rises nor falls, and N5/N6 flag only a point that is itself beyond the zone.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.spc.rules import ALL_RULES, RunRules, find_violations, rule_set

FAST = settings(max_examples=150, deadline=None)


def _segment(z: list[float], t: int) -> list[float]:
    """The points up to and including t since the last gap."""
    start = t
    while start > 0 and not math.isnan(z[start - 1]):
        start -= 1
    return z[start : t + 1]


def _in_a_row(seg: list[float], k: int, test: object) -> bool:
    return len(seg) >= k and all(test(x) for x in seg[-k:])  # type: ignore[operator]


def _changes(seg: list[float], k: int) -> list[float]:
    return [b - a for a, b in zip(seg[-k:-1], seg[-k + 1 :], strict=True)]


def _k_of_m(seg: list[float], k: int, m: int, level: float) -> bool:
    window = seg[-m:]
    last = seg[-1]
    up = last > level and sum(x > level for x in window) >= k
    down = last < -level and sum(x < -level for x in window) >= k
    return up or down


def reference(z: list[float], beyond: list[bool] | None = None) -> set[tuple[str, int]]:
    """Every (rule, index) hit, computed by brute force."""
    found: set[tuple[str, int]] = set()
    for t, x in enumerate(z):
        if math.isnan(x):
            continue
        seg = _segment(z, t)
        n1 = beyond[t] if beyond is not None else abs(x) > 3
        rises = len(seg) >= 6 and all(d > 0 for d in _changes(seg, 6))
        falls = len(seg) >= 6 and all(d < 0 for d in _changes(seg, 6))
        alt = len(seg) >= 14 and all(
            (a > 0 > b) or (a < 0 < b)
            for a, b in zip(_changes(seg, 14)[:-1], _changes(seg, 14)[1:], strict=True)
        )
        side = {
            k: _in_a_row(seg, k, lambda v: v > 0) or _in_a_row(seg, k, lambda v: v < 0)
            for k in (8, 9)
        }
        results = {
            "N1": n1,
            "N2": side[9],
            "N3": rises or falls,
            "N4": alt,
            "N5": _k_of_m(seg, 2, 3, 2.0),
            "N6": _k_of_m(seg, 4, 5, 1.0),
            "N7": _in_a_row(seg, 15, lambda v: abs(v) <= 1),
            "N8": _in_a_row(seg, 8, lambda v: abs(v) > 1),
            "WE1": n1,
            "WE2": _k_of_m(seg, 2, 3, 2.0),
            "WE3": _k_of_m(seg, 4, 5, 1.0),
            "WE4": side[8],
        }
        found.update((rule, t) for rule, hit in results.items() if hit)
    return found


# Values on a coarse grid hit the boundaries (0, ±1, ±2, ±3) and exact ties often.
GRID = st.sampled_from([-3.5, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
POINT = st.one_of(GRID, GRID, GRID, st.floats(-4, 4), st.just(math.nan))
# Long drifting stretches so the long-run rules (N4, N7, N2) are exercised too.
SERIES = st.one_of(
    st.lists(POINT, max_size=80),
    st.lists(st.sampled_from([0.5, -0.5, 0.7, -0.3]), min_size=10, max_size=60),
    st.lists(st.floats(0.1, 1.5), min_size=5, max_size=40),
)


@FAST
@given(SERIES)
def test_engine_equals_reference(z: list[float]) -> None:
    got = {(v.rule, v.index) for v in find_violations(np.array(z), rule_set("all"))}
    assert got == reference(z)


@FAST
@given(SERIES, st.data())
def test_engine_equals_reference_with_beyond(z: list[float], data: st.DataObject) -> None:
    beyond = data.draw(st.lists(st.booleans(), min_size=len(z), max_size=len(z)))
    found = find_violations(np.array(z), rule_set("N1,WE1"), beyond=np.array(beyond, dtype=bool))
    got = {(v.rule, v.index) for v in found}
    assert got == {h for h in reference(z, beyond) if h[0] in ("N1", "WE1")}


@FAST
@given(SERIES, st.sets(st.sampled_from(ALL_RULES), min_size=1))
def test_each_rule_is_switchable(z: list[float], chosen: set[str]) -> None:
    rules = rule_set(",".join(chosen))
    got = {(v.rule, v.index) for v in find_violations(np.array(z), rules)}
    assert got == {h for h in reference(z) if h[0] in chosen}


@FAST
@given(st.lists(SERIES, min_size=1, max_size=5).filter(lambda s: len({len(x) for x in s}) == 1))
def test_channels_match_one_at_a_time(columns: list[list[float]]) -> None:
    z = np.array(columns, dtype=np.float64).T.reshape(len(columns[0]), len(columns))
    together = {(v.rule, v.index, v.channel) for v in find_violations(z, rule_set("all"))}
    apart = {
        (v.rule, v.index, c)
        for c, column in enumerate(columns)
        for v in find_violations(np.array(column), rule_set("all"))
    }
    assert together == apart


@FAST
@given(SERIES, st.integers(0, 80))
def test_restore_midway_equals_uninterrupted(z: list[float], cut: int) -> None:
    cut = min(cut, len(z))
    whole = RunRules(rule_set("all"), 1)
    expected = [whole.update(np.array([x])) for x in z]
    first = RunRules(rule_set("all"), 1)
    got = [first.update(np.array([x])) for x in z[:cut]]
    second = RunRules(rule_set("all"), 1)
    second.restore(first.state())
    got += [second.update(np.array([x])) for x in z[cut:]]
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
