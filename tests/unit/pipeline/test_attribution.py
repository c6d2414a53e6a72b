"""The fused tag attribution on constructed evidence: a detector that sees nothing does not
vote, the tag that moved wins over the neighbour the VAE blames, stray rule hits are ignored."""

from __future__ import annotations

import doctest

import numpy as np

import agent.pipeline.attribution as attribution_module
from agent.pipeline.attribution import TagAttribution, ranked
from agent.types import Score

TAGS = ["barrel_temp", "cooling_water_temp", "melt_pressure"]
CALM = np.zeros(3, dtype=bool)


def test_doctests() -> None:
    result = doctest.testmod(attribution_module)
    assert result.attempted > 0 and result.failed == 0


def test_the_tag_that_moved_beats_the_neighbour_the_vae_blames() -> None:
    # the VAE's error sits on the cooling water (it reconstructs one from the other) ...
    vae = Score(7.0, 3.8, (2.7, 8.4, 0.3))
    # ... but only the barrel moved against its own baseline
    z = np.array([2.0, 0.3, 0.2])
    shift = Score(2.0, 3.9, (0.8, 0.1, 0.1))  # below its threshold: it does not vote itself
    a = TagAttribution(3)
    for _ in range(6):
        shares = a.update(vae, shift, z, CALM)
    assert ranked(TAGS, shares, 2)[0][0] == "barrel_temp"
    # without the shift detector's view the VAE alone names the neighbour
    alone = TagAttribution(3)
    for _ in range(6):
        shares = alone.update(vae, None, None, CALM)
    assert ranked(TAGS, shares, 1)[0][0] == "cooling_water_temp"
    assert abs(float(shares.sum()) - 1.0) < 1e-9


def test_sustained_rule_hits_vote_and_a_stray_one_does_not() -> None:
    quiet = Score(0.5, 3.8, (0.2, 0.3, 0.5))  # the VAE sees little, mostly melt_pressure
    stuck = np.array([False, True, False])
    a = TagAttribution(3)
    shares = a.update(quiet, None, None, stuck)  # one hit: chance
    assert ranked(TAGS, shares, 1)[0][0] == "melt_pressure"
    for _ in range(8):
        shares = a.update(quiet, None, None, stuck)
    assert ranked(TAGS, shares, 1)[0][0] == "cooling_water_temp"


def test_no_evidence_no_ranking_and_reset_forgets() -> None:
    a = TagAttribution(3)
    assert not a.update(None, None, None, CALM).any()
    a.update(Score(9.0, 3.0, (1.0, 0.0, 0.0)), None, None, CALM)
    assert a.shares.argmax() == 0
    a.reset()
    assert not a.shares.any()
