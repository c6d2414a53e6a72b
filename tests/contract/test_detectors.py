"""One contract, every detector: faults score higher than normal data, seeds reproduce, and
state survives a save/restore.

Each detector is wrapped in a `Case` that says how to build it from the shared test bundle
and how to turn one sample into one number (higher = more anomalous), because the VAE scores
windows and the SPC charts score rows. The stream is the simulated extrusion line with a
step of 6 sigma injected on one tag; AUC is computed with ties counted half.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.bundles.bundle import load_bundle
from agent.core.tabular import read_csv
from agent.core.window import SlidingWindow
from agent.pipeline.detectors.shift import ShiftDetector
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.detectors.vae import VaeDetector

FAULT_START, FAULT_END, ROWS = 300, 600, 800


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a fault row > score of a normal row), ties counted half."""
    fault, normal = scores[labels], scores[~labels]
    greater = (fault[:, None] > normal[None, :]).mean()
    ties = (fault[:, None] == normal[None, :]).mean()
    return float(greater + 0.5 * ties)


def stream(
    bundle_dir: Path, tmp: Path, seed: int, channel: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Normal rows of the simulated line with a step fault on one channel, and the labels."""
    from agent.demo.run import write_historian

    path = tmp / f"stream-{seed}.csv"
    write_historian(path, rows=ROWS, seed=seed)
    channels = load_bundle(bundle_dir).manifest.channel_names
    values = read_csv(path, channels).values.copy()
    sigma = values[:FAULT_START, channel].std()
    values[FAULT_START:FAULT_END, channel] += 6.0 * sigma
    labels = np.zeros(ROWS, dtype=bool)
    labels[FAULT_START:FAULT_END] = True
    return values, labels


class VaeCase:
    """The VAE: a sliding window in front of `score_one`; no score until the window is full."""

    name = "vae"

    def __init__(self, bundle_dir: Path, precision: str) -> None:
        bundle = load_bundle(bundle_dir)
        self.detector = VaeDetector(bundle, precision=precision)
        self.window = SlidingWindow(bundle.manifest.window, len(bundle.manifest.channels))

    def step(self, row: np.ndarray) -> float | None:
        """Score of the window ending at this row."""
        window = self.window.push(row)
        return None if window is None else self.detector.score_one(window).value

    def state(self) -> Any:
        """Everything that decides the next outputs."""
        return (self.detector, self.window)

    def restore(self, state: Any) -> None:
        """Continue from a saved state."""
        self.detector, self.window = state


class SpcCase:
    """The SPC charts: the number of tags out of control on this row."""

    name = "spc"

    def __init__(self, bundle_dir: Path) -> None:
        manifest = load_bundle(bundle_dir).manifest
        self.detector = SpcDetector.from_manifest(manifest.spc, flatline_samples=15)

    def step(self, row: np.ndarray) -> float | None:
        """Tags breaking a rule on this row."""
        return float(self.detector.update(row).out_of_control.sum())

    def state(self) -> Any:
        """The charts (previous row, flatline counts)."""
        return self.detector

    def restore(self, state: Any) -> None:
        """Continue from a saved state."""
        self.detector = state


class ShiftCase:
    """The drift-tolerant shift detector of the bundle: its score on this row. Its state goes
    through JSON (`state()`/`restore()`), as it would across an agent restart."""

    name = "shift"

    def __init__(self, bundle_dir: Path) -> None:
        params = load_bundle(bundle_dir).manifest.shift
        assert params is not None, "the export fits the shift detector into every bundle"
        self.params = params
        self.detector = ShiftDetector(params, raise_after=3, clear_after=3)

    def step(self, row: np.ndarray) -> float | None:
        """The largest watched channel's shift, in units of its normal size."""
        return self.detector.update(row).value

    def state(self) -> Any:
        """The levels, the baseline and the alarm, as JSON text."""
        return json.dumps(self.detector.state())

    def restore(self, state: Any) -> None:
        """Continue from a saved state."""
        self.detector = ShiftDetector(self.params, raise_after=3, clear_after=3)
        self.detector.restore(json.loads(state))


Factory = Callable[[Path], VaeCase | SpcCase | ShiftCase]
CASES: dict[str, Factory] = {
    "vae-int8": lambda b: VaeCase(b, "int8"),
    "vae-fp32": lambda b: VaeCase(b, "fp32"),
    "spc": SpcCase,
    "shift": ShiftCase,
}


@dataclass
class Run:
    scores: np.ndarray  # NaN where the detector gave no score
    labels: np.ndarray


def run(case: VaeCase | SpcCase | ShiftCase, values: np.ndarray, labels: np.ndarray) -> Run:
    out = [case.step(row) for row in values]
    return Run(np.array([np.nan if s is None else s for s in out]), labels)


@pytest.fixture(params=sorted(CASES))
def factory(request: pytest.FixtureRequest) -> Factory:
    return CASES[request.param]


def test_faults_score_higher_than_normal_data(
    factory: Factory, bundle_dir: Path, tmp_path: Path
) -> None:
    values, labels = stream(bundle_dir, tmp_path, seed=21)
    result = run(factory(bundle_dir), values, labels)
    scored = ~np.isnan(result.scores)
    assert scored.sum() > ROWS * 0.9
    assert auc(result.labels[scored], result.scores[scored]) >= 0.9


def test_same_seed_same_scores(factory: Factory, bundle_dir: Path, tmp_path: Path) -> None:
    a = run(factory(bundle_dir), *stream(bundle_dir, _mk(tmp_path, "a"), seed=4))
    b = run(factory(bundle_dir), *stream(bundle_dir, _mk(tmp_path, "b"), seed=4))
    other = run(factory(bundle_dir), *stream(bundle_dir, _mk(tmp_path, "c"), seed=5))
    np.testing.assert_array_equal(a.scores, b.scores)
    assert not np.array_equal(np.nan_to_num(a.scores), np.nan_to_num(other.scores))


def test_state_survives_save_and_restore(
    factory: Factory, bundle_dir: Path, tmp_path: Path
) -> None:
    values, _ = stream(bundle_dir, tmp_path, seed=8)
    case = factory(bundle_dir)
    half = FAULT_START + 10  # mid-stream, inside the fault, with a full window behind it
    for row in values[:half]:
        case.step(row)
    saved = pickle.dumps(case.state())
    rest = [case.step(row) for row in values[half:]]
    resumed = factory(bundle_dir)
    resumed.restore(pickle.loads(saved))
    again = [resumed.step(row) for row in values[half:]]
    assert rest == again
    assert any(r is not None for r in rest)


def _mk(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path
