"""The latent term of `--score mean+latent` (export/latent.py): the graph against torch and
numpy, its held-out units, the whitening, detection of an injected fault, and a bundle
trained with it and replayed through `lineside score` in fp32 and int8."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.config import DetectionConfig
from agent.pipeline.replay import DEFAULT_DETECTION, replay_csv
from export import latent
from export.errors import ExportError
from export.latent import LATENT_WEIGHT, split_score, whitening
from export.onnx_export import export_onnx, fit_latent, prepare, scoring_module
from export.parity import score_onnx
from export.pipeline import TrainOptions, run_train
from export.train import TrainConfig, Vae, train_vae
from tests.export_data import CHANNELS, TRAIN_WINDOW, normal_rows, split_windows, write_csv

WINDOW = 12


@pytest.fixture(scope="module")
def trained() -> tuple[Vae, dict[str, np.ndarray]]:
    windows = split_windows(WINDOW)
    model = train_vae(
        prepare(windows["train"]), prepare(windows["val"]), TrainConfig(epochs=6, seed=3)
    ).model
    return model, windows


def _auc(normal: np.ndarray, faulty: np.ndarray) -> float:
    """P(a faulty score beats a normal one), ties counted half."""
    diff = faulty[:, None] - normal[None, :]
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


def test_split_score_names_the_reduction_and_the_term() -> None:
    assert split_score("mean+latent") == ("mean", True)
    assert split_score("max") == ("max", False)


def test_onnx_with_latent_matches_torch_and_numpy(
    trained: tuple[Vae, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    model, w = trained
    baseline = np.full(len(CHANNELS), 0.5, dtype=np.float32)
    term = fit_latent(model, w["train"], w["val"], baseline, None, "mean")
    path, plain_path = tmp_path / "latent.onnx", tmp_path / "plain.onnx"
    export_onnx(model, path, baseline, None, "mean", term)
    export_onnx(model, plain_path, baseline, None, "mean")
    score, contrib = score_onnx(path, w["test"])
    plain_score, plain_contrib = score_onnx(plain_path, w["test"])
    with torch.no_grad():
        torch_score, _ = scoring_module(model, baseline, None, "mean", term)(
            torch.from_numpy(w["test"])
        )
        mu, _ = model.encode(torch.from_numpy(prepare(w["test"])))
    np.testing.assert_allclose(score, torch_score.numpy(), atol=1e-4, rtol=0)
    # contrib is still the reconstruction error per channel: the term adds to the score only
    np.testing.assert_allclose(contrib, plain_contrib, atol=1e-6, rtol=0)
    z = (mu.numpy().astype(np.float64) - term.center) @ term.whiten
    distance = np.sqrt(np.mean(z**2, axis=1))
    expected = plain_score / term.rec_unit + LATENT_WEIGHT * distance / term.latent_unit
    np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-4)


def test_held_out_units_make_each_part_read_one(
    trained: tuple[Vae, dict[str, np.ndarray]],
) -> None:
    model, w = trained
    baseline = np.full(len(CHANNELS), 0.5, dtype=np.float32)
    term = fit_latent(model, w["train"], w["val"], baseline, None, "max")
    with torch.no_grad():
        score, _ = scoring_module(model, baseline, None, "max", term)(torch.from_numpy(w["val"]))
    # each part has mean 1.0 on the windows its unit came from, so the sum has mean 2.0
    assert float(score.mean()) == pytest.approx(1.0 + LATENT_WEIGHT, rel=1e-4)
    assert term.rec_unit > 0 and term.latent_unit > 0


def test_whitening_survives_a_collapsed_latent_dimension() -> None:
    rng = np.random.default_rng(1)
    mu = np.column_stack([rng.normal(size=300), np.full(300, 0.25)]).astype(np.float32)
    center, whiten = whitening(mu)
    z = (mu - center) @ whiten
    assert np.isfinite(whiten).all()
    assert np.std(z[:, 0]) == pytest.approx(1.0, rel=0.01)
    assert np.abs(z[:, 1]).max() < 1e-3  # the constant dimension adds nothing, no blow-up


def test_latent_score_flags_the_injected_step(
    trained: tuple[Vae, dict[str, np.ndarray]],
) -> None:
    model, w = trained
    baseline = np.full(len(CHANNELS), 0.5, dtype=np.float32)
    term = fit_latent(model, w["train"], w["val"], baseline, None, "mean")
    scoring = scoring_module(model, baseline, None, "mean", term)
    with torch.no_grad():
        normal = scoring(torch.from_numpy(w["val"]))[0].numpy()
        # the last windows of the test part lie wholly inside the +4 step on channel 1
        faulty = scoring(torch.from_numpy(w["test"][-200:]))[0].numpy()
    assert _auc(normal, faulty) >= 0.9


def test_bundle_with_latent_replays_in_fp32_and_int8(tmp_path: Path) -> None:
    rows = normal_rows(700, 5)
    csv = write_csv(tmp_path / "line.csv", rows[:400])
    options = TrainOptions(
        inputs=[csv],
        out=tmp_path / "bundle",
        window=TRAIN_WINDOW,
        epochs=25,  # an undertrained model flags its own training rows, with or without
        score="mean+latent",
        relative=["temp"],
        fusion="vae",  # the latent term's own alarm, not the shift detector's
        quiet=True,
    )
    outcome = run_train(options)
    detector = outcome.manifest["detector"]
    assert detector["score_reduce"] == "mean+latent"
    assert detector["latent_term"]["weight"] == LATENT_WEIGHT
    assert "latent distance" in detector["score"]
    assert outcome.parity.passed
    faulty = rows.copy()
    faulty[500:, 1] += 3.0
    test_csv = write_csv(tmp_path / "test.csv", faulty)
    replays = {
        p: replay_csv(outcome.bundle.path, test_csv, DetectionConfig(**_detection(p)))
        for p in ("fp32", "int8")
    }
    fp32, int8 = replays["fp32"], replays["int8"]
    scored = ~np.isnan(fp32.score)
    assert scored[TRAIN_WINDOW - 1 :].all()
    assert np.isfinite(fp32.contrib[scored]).all() and fp32.contrib.shape[1] == len(CHANNELS)
    assert np.mean(fp32.anomaly == int8.anomaly) >= 0.99
    assert fp32.anomaly[560:].mean() > 0.9  # the step is flagged once a window holds it
    assert fp32.anomaly[:400].mean() < 0.05


def _detection(precision: str) -> dict[str, object]:
    fields = {k: getattr(DEFAULT_DETECTION, k) for k in DEFAULT_DETECTION.__dataclass_fields__}
    return {**fields, "precision": precision}


def test_unknown_score_term_is_refused(tmp_path: Path) -> None:
    options = TrainOptions(inputs=[tmp_path / "missing.csv"], out=tmp_path / "o")
    with pytest.raises(ExportError, match=r"--score must be max or mean, optionally \+latent"):
        run_train(TrainOptions(**{**options.__dict__, "score": "mean+pca"}))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(latent)
    assert result.attempted > 0 and result.failed == 0
