"""The export choices made for SKAB: parity with torch, int8 agreement, relative channels,
the score reduction, the conv encoder, VAE-GAN, and bad training input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agent.pipeline.replay import replay_csv
from export.errors import ExportError
from export.onnx_export import export_onnx, prepare, scoring_module
from export.parity import compare, quantize_best, score_onnx
from export.pipeline import TrainOptions, run_train
from export.progress import ProgressBar, wants_bar
from export.train import TrainConfig, train_vae
from tests.export_data import CHANNELS, TRAIN_WINDOW, normal_rows, split_windows, write_csv

WINDOW = 12


@pytest.fixture(scope="module")
def windows() -> dict[str, np.ndarray]:
    return split_windows(WINDOW)


@pytest.mark.parametrize(
    ("encoder", "reduce", "relative"),
    [("dense", "max", None), ("dense", "mean", [0.0, 0.0, 1.0, 0.0]), ("conv", "max", None)],
)
def test_onnx_fp32_matches_torch_within_1e4(
    windows: dict[str, np.ndarray],
    tmp_path: Path,
    encoder: str,
    reduce: str,
    relative: list[float] | None,
) -> None:
    mask = None if relative is None else np.array(relative, dtype=np.float32)
    config = TrainConfig(epochs=4, seed=1, encoder=encoder)
    model = train_vae(prepare(windows["train"], mask), prepare(windows["val"], mask), config).model
    baseline = np.full(len(CHANNELS), 0.5, dtype=np.float32)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, baseline, mask, reduce)
    onnx_score, onnx_contrib = score_onnx(path, windows["test"])
    with torch.no_grad():
        torch_score, torch_contrib = scoring_module(model, baseline, mask, reduce)(
            torch.from_numpy(windows["test"])
        )
    np.testing.assert_allclose(onnx_score, torch_score.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_contrib, torch_contrib.numpy(), atol=1e-4, rtol=0)
    if reduce == "mean":
        np.testing.assert_allclose(onnx_score, onnx_contrib.mean(axis=1), rtol=1e-5)


def test_int8_decisions_agree_with_fp32_on_99_percent(tmp_path: Path) -> None:
    # A window of 24 x 4 channels makes the first and last layers large enough to be
    # quantised (small MatMuls stay fp32, see export/quantize.py).
    windows = split_windows(24)
    model = train_vae(windows["train"], windows["val"], TrainConfig(epochs=6, seed=0)).model
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    export_onnx(model, fp32)
    held_scores, _ = score_onnx(fp32, windows["val"])
    threshold = float(np.max(held_scores)) * 1.25
    parity, info = quantize_best(
        fp32, int8, windows["train"], windows["val"], held_scores, threshold
    )
    assert info["method"] in ("onnxruntime quantize_dynamic", "onnxruntime quantize_static")
    assert set(info["chosen_over"]) == {"dynamic", "static"}  # type: ignore[arg-type]
    assert not (tmp_path / "m.int8.onnx.static").exists()
    test_fp32, _ = score_onnx(fp32, windows["test"])
    test_int8, _ = score_onnx(int8, windows["test"])
    agreement = compare(test_fp32, test_int8, threshold)
    assert (test_fp32 > threshold).any(), "the fault must cross the threshold"
    assert 1.0 - agreement.decision_flip_fraction >= 0.99
    assert parity.pearson > 0.99


def _train(tmp_path: Path, rows: np.ndarray, **kw: object) -> TrainOptions:
    csv = write_csv(tmp_path / "line.csv", rows)
    base = dict(inputs=[csv], out=tmp_path / "bundle", window=TRAIN_WINDOW, epochs=3, quiet=True)
    return TrainOptions(**{**base, **kw})  # type: ignore[arg-type]


def test_relative_channels_and_model_are_recorded(tmp_path: Path) -> None:
    options = _train(tmp_path, normal_rows(400, 3), relative=["temp"], score="mean")
    outcome = run_train(options)
    detector = outcome.manifest["detector"]
    assert detector["relative_channels"] == ["temp"]
    assert (detector["score_reduce"], detector["model"], detector["encoder"]) == (
        "mean",
        "vae",
        "dense",
    )
    assert "held-out normal windows" in outcome.bundle.manifest.threshold_method


def test_relative_channel_ignores_a_slow_drift(tmp_path: Path) -> None:
    rows = normal_rows(600, 4)
    # 280 train rows of this slow process leave SPC limits that alarm on 15 % of the held-out
    # rows; the test is about the VAE, so the SPC refusal is waived
    options = _train(tmp_path, rows[:400], relative=["temp"], epochs=8, allow_spc_alarms=True)
    run_train(options)
    drifted = rows.copy()
    drifted[:, 2] += np.linspace(0.0, 30.0, 600)  # far beyond anything in training, slowly
    replay = replay_csv(options.out, write_csv(tmp_path / "drift.csv", drifted))
    assert not replay.vae_alarm[450:].any()


def test_vae_gan_trains_and_differs_from_vae(tmp_path: Path) -> None:
    rows = normal_rows(400, 5)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    vae = run_train(_train(tmp_path / "a", rows))
    gan = run_train(_train(tmp_path / "b", rows, model="vae-gan"))
    assert gan.manifest["detector"]["model"] == "vae-gan"
    assert vae.bundle.manifest.threshold != gan.bundle.manifest.threshold


def test_unknown_relative_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"--relative names unknown column\(s\) nope"):
        run_train(_train(tmp_path, normal_rows(400, 3), relative=["nope"]))


def test_unknown_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="--model must be one of vae, vae-gan"):
        run_train(_train(tmp_path, normal_rows(400, 3), model="gan"))


def test_constant_channel_is_kept_with_a_warning_only_when_asked(tmp_path: Path) -> None:
    rows = normal_rows(400, 6)
    rows[:, 3] = 12.0
    lines: list[str] = []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # three channels need a longer window for int8 (64 inputs at least)
    left_out = run_train(_train(tmp_path / "a", rows, quiet=False, window=24), log=lines.append)
    assert left_out.bundle.manifest.channel_names == CHANNELS[:3]
    assert "left out current: constant, never changes (12)" in lines
    # kept on request, its flatline holds the SPC alarm: allowed here to see the VAE's part
    options = _train(
        tmp_path / "b", rows, quiet=False, keep_all_columns=True, allow_spc_alarms=True
    )
    outcome = run_train(options, log=lines.append)
    assert any("constant in the training rows" in line and "current" in line for line in lines)
    assert outcome.manifest["spc"]["sigma"][3] == 0.0 or outcome.bundle.path.is_dir()
    moved = rows.copy()
    moved[300:, 3] = 13.0
    replay = replay_csv(options.out, write_csv(tmp_path / "moved.csv", moved))
    assert replay.vae_alarm[320:].all()


def test_fewer_rows_than_a_window_scores_nothing(tmp_path: Path) -> None:
    options = _train(tmp_path, normal_rows(400, 7))
    run_train(options)
    short = write_csv(tmp_path / "short.csv", normal_rows(TRAIN_WINDOW - 1, 8))
    replay = replay_csv(options.out, short)
    assert len(replay.lines) == TRAIN_WINDOW - 1
    assert np.isnan(replay.score).all() and not replay.vae_alarm.any()


def test_progress_bar_only_on_a_tty(tmp_path: Path) -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not wants_bar(io.StringIO(), quiet=False)
    assert not wants_bar(Tty(), quiet=True)
    tty = Tty()
    assert wants_bar(tty, quiet=False)
    bar = ProgressBar(tty, total=4)
    for epoch, loss in enumerate([0.5, 0.4, 0.45, 0.3], 1):
        bar.update(epoch, loss)
    bar.close()
    text = tty.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n")
    assert "4/4 epochs" in text and "best 0.30000 @ 4" in text


def test_cli_passes_the_new_options(tmp_path: Path) -> None:
    from export.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--input", "a.csv", "--out", "o", "--model", "vae-gan", "--beta", "0.1",
         "--relative", "temp,flow", "--score", "mean", "--encoder", "conv"]
    )  # fmt: skip
    assert (args.model, args.beta, args.relative) == ("vae-gan", 0.1, ["temp", "flow"])
    assert (args.score, args.encoder) == ("mean", "conv")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"beta": -1.0}, "--beta must be non-negative"),
        ({"score": "median"}, "--score must be max or mean"),
        ({"encoder": "lstm"}, "--encoder must be dense or conv"),
    ],
)
def test_bad_options_are_refused_before_reading_data(
    tmp_path: Path, option: dict[str, object], message: str
) -> None:
    base = TrainOptions(inputs=[tmp_path / "missing.csv"], out=tmp_path / "o")
    with pytest.raises(ExportError, match=message):
        run_train(TrainOptions(**{**base.__dict__, **option}))  # type: ignore[arg-type]
