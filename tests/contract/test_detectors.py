"""One contract, every detector: faults score higher than normal data, seeds reproduce, state
survives a save/restore through JSON, and reset forgets.

Every detector of a line is called the same way, with no adapter: `update(row)` returns a
`Score` (higher = more anomalous) or None, `state()` / `restore()` / `reset()`. The stream is
the simulated extrusion line with a step of 6 sigma injected on one tag; AUC is computed with
ties counted half.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from agent.bundles.bundle import load_bundle
from agent.core.tabular import read_csv
from agent.pipeline.detectors.base import Detector
from agent.pipeline.detectors.shift import ShiftDetector
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.detectors.vae import VaeDetector, VaeModel
from agent.pipeline.events.alarms import DebouncedAlarm

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


def vae(bundle_dir: Path, precision: str) -> VaeDetector:
    """The bundle's VAE with its window, as the line builds it."""
    bundle = load_bundle(bundle_dir)
    m = bundle.manifest
    return VaeDetector(VaeModel(bundle, precision), m.window, len(m.channels), m.hop)


def spc(bundle_dir: Path) -> SpcDetector:
    """The bundle's I-MR charts with the site's default flatline rule."""
    return SpcDetector.from_manifest(load_bundle(bundle_dir).manifest.spc, flatline_samples=15)


def shift(bundle_dir: Path) -> ShiftDetector:
    """The bundle's drift-tolerant shift detector."""
    params = load_bundle(bundle_dir).manifest.shift
    assert params is not None, "the export fits the shift detector into every bundle"
    return ShiftDetector(params)


Factory = Callable[[Path], Detector]
CASES: dict[str, Factory] = {
    "vae-int8": lambda b: vae(b, "int8"),
    "vae-fp32": lambda b: vae(b, "fp32"),
    "spc": spc,
    "shift": shift,
}


@dataclass
class Run:
    scores: np.ndarray  # NaN where the detector gave no score
    labels: np.ndarray


def values_of(detector: Detector, rows: np.ndarray) -> list[float | None]:
    """The score value of each row, None where the detector gave none, with the detector told
    of its alarm after every row, as the line does (debounced, the site's defaults)."""
    alarm = DebouncedAlarm(raise_after=3, clear_after=10)
    out: list[float | None] = []
    for row in rows:
        score = detector.update(row)
        if score is not None:
            alarm.level(score.value, score.threshold, clear_ratio=0.8)
        detector.observe_alarm(alarm.active)
        out.append(None if score is None else score.value)
    return out


def run(detector: Detector, values: np.ndarray, labels: np.ndarray) -> Run:
    out = values_of(detector, values)
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
    detector = factory(bundle_dir)
    half = FAULT_START + 10  # mid-stream, inside the fault, with a full window behind it
    values_of(detector, values[:half])
    saved = json.dumps(detector.state())  # as a snapshot carries it across a restart
    rest = values_of(detector, values[half:])
    resumed = factory(bundle_dir)
    resumed.restore(json.loads(saved))
    again = values_of(resumed, values[half:])
    assert rest == again
    assert any(r is not None for r in rest)


def test_reset_forgets_everything(factory: Factory, bundle_dir: Path, tmp_path: Path) -> None:
    values, _ = stream(bundle_dir, tmp_path, seed=9)
    fresh = values_of(factory(bundle_dir), values[FAULT_START:])
    used = factory(bundle_dir)
    values_of(used, values[:FAULT_START])
    used.reset()
    assert values_of(used, values[FAULT_START:]) == fresh


def test_the_vae_model_pickles_by_its_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    """A worker process gets the model by pickle: the bundle path, not the ONNX session."""
    values, _ = stream(bundle_dir, tmp_path, seed=3)
    bundle = load_bundle(bundle_dir)
    window = values[: bundle.manifest.window]
    model = VaeModel(bundle, "int8")
    again = pickle.loads(pickle.dumps(model))
    assert again.score_one(window) == model.score_one(window)


def _mk(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path
