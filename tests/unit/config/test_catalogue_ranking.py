"""Causes ranked by signature: for every kind of symptom the exact entry of the tag the evidence
points at comes first, ahead of generic, partial and neighbour entries."""

from __future__ import annotations

import pytest

from agent.config.catalogue import Catalogue, FailureMode, Symptom

KINDS = ("step-up", "step-down", "drift-up", "drift-down", "stuck", "noisy", "spikes", "decoupled")


def mode(id_: str, *symptoms: tuple[str, str]) -> FailureMode:
    return FailureMode(
        id=id_,
        symptoms=tuple(Symptom(t, d) for t, d in symptoms),
        cause={"en": f"cause {id_}"},
        check={"en": f"check {id_}"},
    )


#: Every kind on the faulty tag, the generic up/down, a two-symptom mode and a neighbour's
#: entries of every kind: each event below is a trap for all but one of them.
CATALOGUE = Catalogue(
    modes=(
        *(mode(f"own-{k}", ("melt_pressure", k)) for k in KINDS),
        mode("own-up", ("melt_pressure", "up")),
        mode("own-down", ("melt_pressure", "down")),
        mode("screen", ("melt_pressure", "up"), ("throughput", "down")),
        *(mode(f"neighbour-{k}", ("motor_current", k)) for k in KINDS),
    )
)


@pytest.mark.parametrize("kind", KINDS)
def test_the_exact_signature_of_the_attributed_tag_wins(kind: str) -> None:
    # The fault tag shows `kind`; its correlated neighbour moved along (the same direction) or,
    # for a decoupling, the break is reported on both ends.
    own = "steady" if kind == "decoupled" else kind
    directions = {"melt_pressure": own, "motor_current": own, "throughput": "steady"}
    decoupled = frozenset({"melt_pressure", "motor_current"} if kind == "decoupled" else ())
    weights = {"melt_pressure": 1.0, "motor_current": 0.4, "throughput": 0.1}
    ranked = CATALOGUE.match(directions, decoupled, weights=weights)
    assert ranked[0].id == f"own-{kind}"
    assert ranked[0].score > ranked[1].score
    if kind.endswith("-up"):
        assert "own-up" in [c.id for c in ranked] and "screen" not in [c.id for c in ranked[:1]]


def test_without_weights_a_generic_entry_loses_to_the_exact_one() -> None:
    ranked = CATALOGUE.match({"melt_pressure": "drift-down"})
    assert [c.id for c in ranked[:2]] == ["own-drift-down", "own-down"]


def test_a_mode_whose_every_symptom_is_seen_beats_a_part() -> None:
    directions = {"melt_pressure": "step-up", "throughput": "drift-down"}
    weights = {"melt_pressure": 1.0, "throughput": 0.6}
    ranked = CATALOGUE.match(directions, weights=weights)
    assert ranked[0].id == "screen" and ranked[0].fit == 1.0
    # ... and with the flow steady the pressure transducer's own entry comes first
    ranked = CATALOGUE.match({"melt_pressure": "step-up", "throughput": "steady"}, weights=weights)
    assert ranked[0].id == "own-step-up"
    assert "screen" in [c.id for c in ranked]  # half its symptoms seen: still offered, lower


def test_the_neighbour_wins_when_the_evidence_points_at_it() -> None:
    directions = {"melt_pressure": "step-up", "motor_current": "step-up"}
    weights = {"melt_pressure": 0.3, "motor_current": 1.0}
    assert CATALOGUE.match(directions, weights=weights)[0].id == "neighbour-step-up"


def test_a_doubtful_decoupling_yields_to_an_offset_but_is_offered_alone() -> None:
    # the tag stepped cleanly and its correlations broke: an offset first, then the decoupling
    directions = {"melt_pressure": "step-up"}
    doubtful = frozenset({"melt_pressure"})
    ranked = CATALOGUE.match(directions, doubtful=doubtful, weights={"melt_pressure": 1.0})
    assert [c.id for c in ranked[:2]] == ["own-step-up", "own-decoupled"]
    # a site that knows no offset of that tag gets the decoupling (the demo's motor current)
    only = Catalogue(modes=(mode("miswired", ("motor_current", "decoupled")),))
    found = only.match({"motor_current": "step-up"}, doubtful=frozenset({"motor_current"}))
    assert [c.id for c in found] == ["miswired"] and found[0].score == pytest.approx(0.9)
    assert only.match({"motor_current": "step-up"}) == []
