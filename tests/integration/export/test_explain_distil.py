"""The distillation corpus: facts of simulated faults read as the fault was, SKAB CSVs load."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from agent.explain.template import build_prompt, render
from export.distil import FAULTS, simulated_facts, skab_facts
from tests.explain_helpers import demo_catalogue


def test_simulated_faults_give_the_facts_of_their_fault(catalogue) -> None:
    facts = simulated_facts(4 * len(FAULTS), catalogue, seed=1)
    right = Counter()
    for i, f in enumerate(facts):
        kind, signal, size = FAULTS[i % len(FAULTS)]
        directions = {t.tag: t.direction for t in f.tags}
        expected = {
            "step": "step-up" if size > 0 else "step-down",
            "drift": "drift-up" if size > 0 else "drift-down",
            "variance": "noisy",
            "stuck": "stuck",
        }.get(kind.value)
        if expected is not None:
            right[kind.value] += directions.get(signal) == expected
    # Each fault kind is read right in most of its windows (sizes and timing are random).
    assert all(count >= 3 for count in right.values()), right
    prompt = build_prompt(facts[0], "zh")
    assert prompt.startswith("请只根据以下事实") and prompt.endswith("解释： ")
    assert "tag " in prompt and render(facts[0], "zh")


def test_skab_csvs_become_facts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "valve1"
    folder.mkdir()
    lines = ["datetime;Accelerometer1RMS;Pressure;Temperature;anomaly;changepoint"]
    for i in range(400):
        pressure = 1.0 + rng.normal() * 0.02 + (0.5 if i >= 300 else 0.0)
        label = 1 if i >= 300 else 0
        lines.append(
            f"2020-03-09 10:{i // 60:02d}:{i % 60:02d};{0.2 + rng.normal() * 0.01:.4f};"
            f"{pressure:.4f};{70 + rng.normal() * 0.1:.3f};{label};0"
        )
    (folder / "1.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "broken.csv").write_text("no;labels\n1;2\n")
    facts = skab_facts(tmp_path, demo_catalogue())
    assert facts
    first = facts[0]
    assert first.line == "valve1" and first.tags[0].tag == "pressure"
    assert first.tags[0].direction == "step-up" and first.tags[0].outside == "above"
    assert first.causes == ()
    assert "No known failure mode fits" in render(first, "en")
