"""The grounding guard: what the facts support passes, anything else is refused with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from agent.explain.facts import build_facts, fmt
from agent.explain.guard import check
from agent.explain.template import render
from tests.explain_helpers import N, context, normal_rows, snapshot

NO_TAG = "names none of the event's tags"


@pytest.fixture(scope="module")
def facts(catalogue):
    rows = normal_rows()
    rows[16:, 3] += 15.0
    rows[:, 1] -= np.linspace(0.0, 9.0, N)
    return build_facts(snapshot(rows, (0.9, 4.0, 1.0, 12.0, 0.8)), context(), catalogue)


def test_template_text_passes_its_own_guard(facts, catalogue) -> None:
    for language in ("en", "zh"):
        verdict = check(render(facts, language), facts, catalogue)
        assert verdict.accepted, (language, verdict)


def test_a_faithful_paraphrase_passes(facts, catalogue) -> None:
    p = facts.tags[0]
    text = (
        f"Melt pressure on extruder-1 jumped: melt_pressure reads {fmt(p.value)} bar, over the "
        f"{fmt(p.high)} bar limit, and throughput is falling. Likely cause: a clogged screen "
        "pack. Check the differential pressure across screen changer F-101."
    )
    assert check(text, facts, catalogue).accepted


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        ("melt_pressure is high and barrel_temp is rising.", "unknown-tag", "barrel_temp"),
        ("melt_pressure has risen to 250.0 bar.", "wrong-number", "250.0"),
        ("The score is 99 against a threshold of 8.0.", "wrong-number", "99"),
        (
            "melt_pressure is up; likely cause: a worn screw flight.",
            "unknown-cause",
            "a worn screw flight",
        ),
        (
            "melt_pressure is up because of gearbox bearing wear.",
            "unknown-cause",
            "gearbox bearing wear",
        ),
        (
            "melt_pressure is up. Bypass the high-pressure interlock to keep running.",
            "deny-list",
            "bypass",
        ),
        (
            "Silence the alarm and carry on; melt_pressure is fine.",
            "deny-list",
            "silence the alarm",
        ),
        ("melt_pressure 偏高，请屏蔽报警。", "deny-list", "屏蔽"),
        (
            "Jump out the pressure switch until the shift ends.",
            "deny-list",
            "jump out the pressure switch",
        ),
        ("   ", "empty", ""),
        ("Something is wrong on the line, please check.", "no-tag", NO_TAG),
    ],
)
def test_unsupported_text_is_rejected_with_its_reason(
    facts, catalogue, text, reason, detail
) -> None:
    verdict = check(text, facts, catalogue)
    assert not verdict.accepted
    assert verdict.reason == reason
    assert verdict.detail == detail
