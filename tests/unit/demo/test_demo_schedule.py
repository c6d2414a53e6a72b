"""The demo's fault plan and scoring: detections, delays, false alarms, normal time."""

from __future__ import annotations

import json

import pytest

from agent.demo.schedule import DEMO_FAULTS, FAULT_S, GRACE_S, WARMUP_S, DemoScore, plan


def test_plan_spreads_every_fault_after_the_warmup() -> None:
    records = plan(600.0)
    assert [r.planned.kind for r in records] == [f.kind for f in DEMO_FAULTS]
    assert records[0].injected_at == WARMUP_S
    assert all(r.cleared_at - r.injected_at == FAULT_S for r in records)
    assert records[-1].cleared_at + GRACE_S <= 600.0


def test_too_short_a_demo_says_how_long_it_must_be() -> None:
    with pytest.raises(ValueError, match="at least 510 line seconds"):
        plan(300.0)


def test_alarms_become_detections_or_false_alarms() -> None:
    score = DemoScore(plan(600.0), 600.0)
    first = score.faults[0]
    score.alarm_raised(first.injected_at + 4.0, "vae")
    score.alarm_raised(first.injected_at + 6.0, "spc")  # the same fault: not a second detection
    score.alarm_raised(first.cleared_at + GRACE_S - 1.0, "spc")  # still the fault's grace period
    score.alarm_raised(30.0, "spc")  # before any fault: false
    summary = score.to_json()
    assert summary["faults"][0] == {
        "kind": "step", "signal": "melt_pressure", "injected_at": 60.0,
        "detected_at": 64.0, "delay_s": 4.0, "detector": "vae",
    }  # fmt: skip
    assert [f["detected_at"] for f in summary["faults"][1:]] == [None] * 4
    assert summary["false_alarms"] == 1
    # 600 s minus five faults of 40 s, each with 30 s of grace
    assert summary["normal_seconds"] == 600.0 - 5 * (FAULT_S + GRACE_S)
    assert "missed" in score.table() and "false alarms: 1" in score.table()
    json.dumps(summary)  # the documented shape serialises
