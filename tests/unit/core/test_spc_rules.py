"""Run rules on constructed sequences: each rule fires exactly where its pattern completes.

Each test builds the shortest sequence that completes one pattern, checks the hit lands on the
last point of it and not one point earlier, and checks the stated conventions (equality, gaps,
runs that go on, the `beyond` override, state across a restart, bad rule specs).
"""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

from agent.core.spc import rules as rules_module
from agent.core.spc.rules import (
    ALL_RULES,
    NELSON,
    WESTERN_ELECTRIC,
    RuleSet,
    RunRules,
    Violation,
    find_violations,
    rule_set,
)


def hits_of(rule: str, z: list[float]) -> list[int]:
    """Indices where `rule` alone fires on a one-channel series."""
    return [v.index for v in find_violations(np.array(z), rule_set(rule))]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(rules_module)
    assert result.attempted >= 4
    assert result.failed == 0


def test_rule_groups() -> None:
    assert rule_set("nelson").ids == NELSON
    assert rule_set("we").ids == WESTERN_ELECTRIC
    assert rule_set("none").ids == ()
    assert rule_set("all").ids == ALL_RULES
    assert rule_set("WE3, n1,N2,we3").ids == ("N1", "N2", "WE3")
    assert rule_set("nelson,WE4").ids == (*NELSON, "WE4")
    assert str(rule_set("N8,N1")) == "N1,N8"
    assert "N2" in rule_set("nelson") and "WE4" not in rule_set("nelson")


@pytest.mark.parametrize("spec", ["N9", "WE5", "nelsen", "N1,,N2", "", " "])
def test_bad_rule_spec_names_the_id_and_the_valid_ones(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        rule_set(spec)
    message = str(info.value)
    assert "N1" in message and "WE4" in message
    bad = [t.strip() for t in spec.split(",") if t.strip() and t.strip().upper() not in ALL_RULES]
    for token in bad:
        assert repr(token) in message


def test_ruleset_rejects_unknown_and_unordered_ids() -> None:
    with pytest.raises(ValueError, match="N0"):
        RuleSet(("N0",))
    with pytest.raises(ValueError, match="canonical"):
        RuleSet(("N2", "N1"))


def test_n1_strictly_beyond_three_sigma_both_sides() -> None:
    assert hits_of("N1", [0, 3.0, 3.0001, -3.0, -3.5, np.inf, np.nan]) == [2, 4, 5]


def test_beyond_replaces_three_sigma_for_n1_and_we1_only() -> None:
    z = np.array([0.1, 0.2, 5.0, 0.3])
    beyond = np.array([False, True, False, False])
    found = find_violations(z, rule_set("N1,WE1,N5"), beyond=beyond)
    assert [(v.rule, v.index) for v in found] == [("N1", 1), ("WE1", 1)]


@pytest.mark.parametrize(("rule", "length"), [("N2", 9), ("WE4", 8)])
def test_run_on_one_side_fires_on_each_point_from_the_kth(rule: str, length: int) -> None:
    above = [0.2] * (length + 2)
    assert hits_of(rule, above) == [length - 1, length, length + 1]
    below = [-0.2] * length
    assert hits_of(rule, below) == [length - 1]
    assert hits_of(rule, [0.2] * (length - 1)) == []


@pytest.mark.parametrize(("rule", "length"), [("N2", 9), ("WE4", 8)])
def test_centre_line_point_and_side_change_break_the_run(rule: str, length: int) -> None:
    short = length - 1
    assert hits_of(rule, [0.2] * short + [0.0] + [0.2] * short) == []
    assert hits_of(rule, [0.2] * short + [-0.2] * short) == []
    assert hits_of(rule, [0.2] * short + [np.nan] + [0.2] * short) == []


def test_n3_six_points_rising_or_falling_ties_break() -> None:
    rising = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]
    assert hits_of("N3", rising) == [5]
    assert hits_of("N3", rising[:5]) == []
    assert hits_of("N3", [*rising, 2.6]) == [5, 6]
    assert hits_of("N3", [-x for x in rising]) == [5]
    assert hits_of("N3", [-2.5, -1.5, -0.5, -0.5, 0.5, 1.5, 2.5]) == []
    assert hits_of("N3", [-2.5, -1.5, -0.5, np.nan, 0.5, 1.5, 2.5]) == []


def test_n4_fourteen_alternating_points() -> None:
    zigzag = [0.5 if i % 2 else -0.5 for i in range(14)]
    assert hits_of("N4", zigzag) == [13]
    assert hits_of("N4", zigzag[:13]) == []
    assert hits_of("N4", [*zigzag, 0.5]) == [13]  # the 15th repeats the 14th: a tie breaks it
    assert hits_of("N4", [*zigzag, -0.7]) == [13, 14]
    assert hits_of("N4", [*zigzag[:7], np.nan, *zigzag[7:]]) == []


def test_n5_two_of_three_beyond_two_sigma_same_side() -> None:
    assert hits_of("N5", [2.1, 0.0, 2.1]) == [2]
    assert hits_of("N5", [2.1, 2.1]) == [1]
    assert hits_of("N5", [2.1, 2.1, 2.1]) == [1, 2]
    assert hits_of("N5", [2.1, 2.1, 0.0, 0.0]) == [1]  # the point that ends it is not flagged
    assert hits_of("N5", [2.1, 0.0, 0.0, 2.1]) == []  # 2 of 4, not 2 of 3
    assert hits_of("N5", [2.1, -2.1, 2.1]) == [2]
    assert hits_of("N5", [2.1, -2.1, 0.0]) == []  # opposite sides
    assert hits_of("N5", [2.0, 2.0, 2.0]) == []  # exactly 2 sigma is not beyond
    assert hits_of("N5", [2.1, np.nan, 2.1]) == []
    assert hits_of("WE2", [-2.1, 0.0, -3.5]) == [2]


def test_n6_four_of_five_beyond_one_sigma_same_side() -> None:
    assert hits_of("N6", [1.1, 1.1, 0.0, 1.1, 1.1]) == [4]
    assert hits_of("N6", [1.1, 1.1, 1.1, 1.1]) == [3]
    assert hits_of("N6", [1.1, 1.1, 0.0, 1.1, 0.0, 1.1]) == []  # 4 of 6 is not 4 of 5
    assert hits_of("N6", [1.1, 1.1, 1.1, -1.1, 1.1]) == [4]
    assert hits_of("N6", [1.0, 1.1, 1.1, 1.1, 1.1, 1.0]) == [4]
    assert hits_of("WE3", [-1.1, -1.1, -1.1, 2.0, -1.1]) == [4]
    assert hits_of("N6", [1.1, 1.1, np.nan, 1.1, 1.1]) == []


def test_n7_fifteen_within_one_sigma_inclusive() -> None:
    calm = [0.5, -0.5, 1.0, -1.0, 0.0] * 3
    assert hits_of("N7", calm) == [14]
    assert hits_of("N7", [*calm, 0.2, 1.01, 0.3]) == [14, 15]
    assert hits_of("N7", calm[:14]) == []
    assert hits_of("N7", [*calm[:7], np.nan, *calm[7:]]) == []


def test_n8_eight_beyond_one_sigma_either_side() -> None:
    wide = [1.5, -1.5, 2.5, -3.5, 1.01, -1.01, 1.2, -1.2]
    assert hits_of("N8", wide) == [7]
    assert hits_of("N8", [*wide, 1.0]) == [7]  # exactly 1 sigma is within
    assert hits_of("N8", [1.5] * 9) == [7, 8]  # one side only also counts (Minitab's test 8)
    assert hits_of("N8", [*wide[:4], np.nan, *wide[4:]]) == []


def test_long_runs_keep_firing_past_the_counter_width() -> None:
    calm = [0.1, -0.1] * 200  # 400 points within 1 sigma, alternating: N4 and N7 all along
    found = find_violations(np.array(calm), rule_set("N4,N7"))
    assert [v.index for v in found if v.rule == "N7"] == list(range(14, 400))
    assert [v.index for v in found if v.rule == "N4"] == list(range(13, 400))
    above = find_violations(np.full(300, 0.5), rule_set("N2"))
    assert [v.index for v in above] == list(range(8, 300))


def test_channels_are_independent_and_reported() -> None:
    z = np.zeros((10, 3))
    z[:, 1] = 0.4  # nine in a row above on channel 1 only
    z[5, 2] = -4.0
    found = find_violations(z, rule_set("N1,N2"))
    assert found == [Violation("N1", 5, 2), Violation("N2", 8, 1), Violation("N2", 9, 1)]


def test_update_rows_follow_ids_and_none_gives_empty() -> None:
    engine = RunRules(rule_set("N8,N1,N2"), n_channels=2)
    assert engine.ids == ("N1", "N2", "N8")
    out = engine.update(np.array([4.0, 0.0]))
    assert out.shape == (3, 2) and out.dtype == np.bool_
    assert out[:, 0].tolist() == [True, False, False]
    empty = RunRules(rule_set("none"), n_channels=2).update(np.array([9.0, 9.0]))
    assert empty.shape == (0, 2)


def test_update_rejects_wrong_shape() -> None:
    engine = RunRules(rule_set("we"), n_channels=3)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        engine.update(np.zeros(2))
    with pytest.raises(ValueError, match="n_channels"):
        RunRules(rule_set("we"), n_channels=0)
    with pytest.raises(ValueError, match="1-D"):
        find_violations(np.zeros((2, 2, 2)), rule_set("we"))
    with pytest.raises(ValueError, match="beyond"):
        find_violations(np.zeros(4), rule_set("we"), beyond=np.zeros(3, dtype=bool))


def test_state_survives_a_restart_through_json() -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(0.3, 1.2, size=(120, 4))
    z[40, 1] = np.nan
    whole = RunRules(rule_set("all"), 4)
    first = RunRules(rule_set("all"), 4)
    expected = [whole.update(row) for row in z]
    got = [first.update(row) for row in z[:60]]
    saved = json.loads(json.dumps(first.state(), allow_nan=False))
    second = RunRules(rule_set("all"), 4)
    second.restore(saved)
    got += [second.update(row) for row in z[60:]]
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))


def test_state_records_the_last_change() -> None:
    engine = RunRules(rule_set("N3,N4"), 3)
    engine.update(np.array([0.0, 0.0, 0.0]))
    engine.update(np.array([1.0, -1.0, 0.0]))
    state = engine.state()
    assert state["prev_change"] == [1, -1, 0]
    assert state["prev"] == [1.0, -1.0, 0.0]
    engine.update(np.array([np.nan, 0.0, 0.0]))
    assert engine.state()["prev"][0] is None


def test_state_keeps_a_run_in_progress() -> None:
    engine = RunRules(rule_set("N2"), 1)
    for _ in range(8):
        engine.update(np.array([0.5]))
    restarted = RunRules(rule_set("N2"), 1)
    restarted.restore(engine.state())
    assert bool(restarted.update(np.array([0.5]))[0, 0])
    fresh = RunRules(rule_set("N2"), 1)
    assert not bool(fresh.update(np.array([0.5]))[0, 0])


def test_reset_forgets_runs() -> None:
    engine = RunRules(rule_set("N2"), 1)
    for _ in range(8):
        engine.update(np.array([0.5]))
    engine.reset()
    assert not bool(engine.update(np.array([0.5]))[0, 0])


def test_restore_refuses_another_engine_or_a_broken_state() -> None:
    engine = RunRules(rule_set("we"), 2)
    with pytest.raises(ValueError, match="channels"):
        RunRules(rule_set("we"), 3).restore(engine.state())
    with pytest.raises(ValueError, match="rules"):
        RunRules(rule_set("nelson"), 2).restore(engine.state())
    with pytest.raises(ValueError, match="version"):
        engine.restore({**engine.state(), "version": 99})
    broken = engine.state()
    del broken["up_run"]
    with pytest.raises(ValueError, match="malformed"):
        engine.restore(broken)
    short = {**engine.state(), "prev": [None]}
    with pytest.raises(ValueError, match="2 values"):
        engine.restore(short)
    with pytest.raises(ValueError, match="negative"):
        engine.restore({**engine.state(), "up_run": [-1, 0]})
    with pytest.raises(ValueError, match="wider"):
        engine.restore({**engine.state(), "a_up": [64, 0]})
    with pytest.raises(ValueError, match="malformed"):
        engine.restore({**engine.state(), "a_up": [1000, 0]})
    with pytest.raises(ValueError, match="prev_change"):
        engine.restore({**engine.state(), "prev_change": [2, 0]})
    assert engine.state()["prev_change"] == [0, 0]


def test_batch_blocks_do_not_lose_or_shift_hits() -> None:
    # 12 rules x 40,000 channels: find_violations gathers two points per block.
    rng = np.random.default_rng(3)
    z = rng.normal(0.5, 1.5, size=(9, 40_000))
    engine = RunRules(rule_set("all"), 40_000)
    expected = []
    for t, row in enumerate(z):
        rows, channels = np.nonzero(engine.update(row))
        expected += [
            Violation(engine.ids[r], t, int(c)) for r, c in zip(rows, channels, strict=True)
        ]
    assert find_violations(z, rule_set("all")) == expected
    assert len(expected) > 1000
