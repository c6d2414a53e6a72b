"""The workstation export path: CSV checks, training, ONNX/int8 models, bundle, CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from agent.bundles.bundle import Bundle, load_bundle, sha256_file
from agent.bundles.manifest import Manifest
from agent.core.scaler import RobustScaler
from agent.core.tabular import detect_separator
from export.data import (
    count_windows,
    make_windows,
    read_table,
    read_tables,
    read_tag_units,
    split_tables,
)
from export.errors import ExportError
from export.parity import compare
from export.pipeline import TrainOptions, run_train
from tests.export_data import CHANNELS, normal_rows, write_csv

REPO = Path(__file__).resolve().parents[3]
UNITS = {"flow": "m3/h", "pressure": "bar", "current": "A"}  # temp deliberately missing
ROWS = 900
WINDOW = 16


def write_tag_map(path: Path) -> Path:
    names = [*UNITS, "unused"]
    blocks = [
        f'[[tag]]\nname = "{n}"\naddress = {2 * i}\ntype = "float32"\nunit = "{UNITS.get(n, "")}"\n'
        for i, n in enumerate(names)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Trained:
    options: TrainOptions
    bundle: Bundle
    manifest: dict[str, object]
    scaler: RobustScaler
    csv: Path


def _options(tmp: Path, csv: Path, out: str, **kw: object) -> TrainOptions:
    # score max: these tests read each window's score as its largest channel contribution
    base = TrainOptions(
        inputs=[csv], out=tmp / out, window=WINDOW, epochs=5, seed=3, quiet=True, score="max"
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One in-process training on a comma-separated CSV, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("export")
    csv = write_csv(tmp / "line1.csv", normal_rows(ROWS, seed=11))
    options = _options(tmp, csv, "bundle", tag_map=write_tag_map(tmp / "tags.toml"))
    outcome = run_train(options)
    scaler = RobustScaler.from_dict(outcome.bundle.manifest.scaler)
    return Trained(options, outcome.bundle, outcome.manifest, scaler, csv)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "export", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )


def _score(bundle: Bundle, windows: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(
        str(bundle.model_path(precision)), providers=["CPUExecutionProvider"]
    )
    score, contrib = session.run(["score", "contrib"], {"x": windows.astype(np.float32)})
    return np.asarray(score), np.asarray(contrib)


# --- the bundle --------------------------------------------------------------------------


def test_bundle_loads_and_manifest_is_complete(trained: Trained) -> None:
    bundle = load_bundle(trained.options.out)
    m = bundle.manifest
    assert m.channel_names == CHANNELS
    assert [c.unit for c in m.channels] == ["m3/h", "bar", "", "A"]
    assert (m.window, m.hop, m.model_version) == (WINDOW, 1, 1)
    assert set(m.files) == {"vae.onnx", "vae.int8.onnx", "parity.json", "golden.npz"}
    assert not list(trained.options.out.glob("*.data"))  # single-file ONNX models
    raw = trained.manifest
    assert raw["kind"] == "lineside-bundle" and raw["min_agent_version"] == "0.1.0"
    assert str(raw["created_at"]).endswith("+00:00")
    spc = raw["spc"]
    assert isinstance(spc, dict) and spc["chart"] == "imr" and spc["nsigmas"] == 3.0
    detector = raw["detector"]
    assert isinstance(detector, dict)
    assert (detector["kind"], detector["latent"], detector["hidden"]) == ("vae", 8, 64)
    training = raw["training"]
    assert isinstance(training, dict)
    assert training["rows_train"] + training["rows_val"] + training["rows_cal"] == ROWS
    assert training["rows_dropped"] == 0 and training["seed"] == 3
    assert training["inputs"] == ["line1.csv"]
    assert 1 <= training["best_epoch"] <= training["epochs_run"] <= 5


def test_manifest_is_written_through_the_schema_the_device_reads(trained: Trained) -> None:
    text = (trained.options.out / "manifest.json").read_text(encoding="utf-8")
    assert json.loads(text) == trained.manifest
    parsed = Manifest.from_dict(trained.manifest)
    assert json.dumps(parsed.to_dict(), indent=2) + "\n" == text  # key for key, in order
    assert Manifest.from_dict(parsed.to_dict()) == parsed == trained.bundle.manifest


def test_spc_limits_are_fitted_on_raw_train_rows(trained: Trained) -> None:
    m = trained.bundle.manifest
    train_rows = normal_rows(ROWS, seed=11)[: round(ROWS * 0.7)]
    np.testing.assert_allclose(m.spc.center, train_rows.mean(axis=0), atol=1e-4)
    overall = train_rows.std(axis=0, ddof=1)
    short = np.abs(np.diff(train_rows, axis=0)).mean(axis=0) / 1.128
    np.testing.assert_allclose(m.spc.sigma, np.maximum(overall, short), rtol=1e-6)
    np.testing.assert_allclose(trained.scaler.center, np.median(train_rows, axis=0), atol=1e-4)


def test_int8_model_scores_windows(trained: Trained) -> None:
    windows = make_windows([normal_rows(200, seed=5)], trained.scaler, WINDOW, 1)
    score, contrib = _score(trained.bundle, windows, "int8")
    assert score.shape == (len(windows),) and contrib.shape == (len(windows), len(CHANNELS))
    assert score.dtype == np.float32
    np.testing.assert_allclose(score, contrib.max(axis=1), atol=1e-5)
    fp32, fp32_contrib = _score(trained.bundle, windows, "fp32")
    # contributions are in units of each channel's mean error on held-out normal windows
    assert np.all(np.abs(np.log(fp32_contrib.mean(axis=0))) < np.log(3.0))
    assert np.corrcoef(fp32, score)[0, 1] > 0.99


def test_threshold_is_calibrated(trained: Trained) -> None:
    m = trained.bundle.manifest
    assert m.threshold > 0
    cal_windows = ROWS - round(ROWS * 0.7) - round(ROWS * 0.15) - WINDOW + 1
    val_windows = round(ROWS * 0.15) - WINDOW + 1
    held_out = cal_windows + val_windows  # every window held out of the weights
    assert m.threshold_method == (
        "false-alarm budget 0.125/h at 1 s per row: share 3.47e-05 of normal windows above it, "
        f"extrapolated by a Pareto tail (shape 0) above the top 10% of {held_out} held-out "
        "normal windows"
    )


def test_parity_json_has_the_figures(trained: Trained) -> None:
    parity = json.loads((trained.options.out / "parity.json").read_text())
    for key in ("pearson", "max_abs_diff", "max_rel_diff", "decision_flips"):
        assert isinstance(parity[key], (int, float)), key
    assert parity["passed"] is True and parity["pearson"] >= 0.99
    assert 0.0 <= parity["decision_flip_fraction"] <= 0.01
    assert parity["threshold"] == trained.bundle.manifest.threshold
    # the two big layers go int8; the latent bottleneck stays fp32 (see export/quantize.py)
    assert parity["quantization"]["quantized_matmuls"] == 2
    assert len(parity["quantization"]["kept_fp32"]) == 2


def test_step_on_one_channel_is_flagged_and_attributed(trained: Trained) -> None:
    m = trained.bundle.manifest
    normal = normal_rows(400, seed=99)
    windows = make_windows([normal], trained.scaler, WINDOW, WINDOW)
    score, _ = _score(trained.bundle, windows, "int8")
    assert np.mean(score > m.threshold) < 0.1
    for channel in range(len(CHANNELS)):
        raw = normal[:WINDOW].copy()
        raw[WINDOW // 2 :, channel] += 8.0 * trained.scaler.scale[channel]
        stepped = make_windows([raw], trained.scaler, WINDOW, 1)
        s, contrib = _score(trained.bundle, stepped, "int8")
        assert s[0] > m.threshold, CHANNELS[channel]
        assert int(np.argmax(contrib[0])) == channel


def test_same_seed_via_cli_on_semicolon_csv_gives_same_model(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from export.cli import main

    csv = write_csv(tmp_path / "line1.csv", normal_rows(ROWS, seed=11), sep=";")
    out = tmp_path / "again"
    status = main(
        ["train", "--input", str(csv), "--out", str(out), "--window", str(WINDOW),
         "--epochs", "5", "--seed", "3", "--quiet", "--score", "max"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err == ""  # --quiet, and no warnings leaked
    assert "threshold" in captured.out
    assert re.search(r"parity +ok: .* \d+/\d+ decisions flipped", captured.out)
    again = load_bundle(out)
    assert again.manifest.threshold == trained.bundle.manifest.threshold
    assert again.manifest.scaler == trained.bundle.manifest.scaler
    assert sha256_file(out / "vae.onnx") == sha256_file(trained.options.out / "vae.onnx")


def test_parity_loss_ships_fp32_alone_unless_int8_is_allowed(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "line.csv", normal_rows(400, seed=2))
    gate = {"max_int8_flip_fraction": 0.0, "max_int8_divergence": 0.0}  # no model can pass
    refused = run_train(_options(tmp_path, csv, "fp32", epochs=1, **gate))
    assert refused.parity.passed is False
    assert refused.bundle.manifest.models == {"fp32": "vae.onnx"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32", "line.csv"]  # no staging left

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("previous bundle")
    outcome = run_train(
        _options(tmp_path, csv, "out", epochs=1, allow_parity_loss=True, force=True, **gate)
    )
    assert outcome.parity.passed is False
    assert outcome.bundle.manifest.models["int8"] == "vae.int8.onnx"
    assert not (tmp_path / "out" / "old.txt").exists()
    assert json.loads((tmp_path / "out" / "parity.json").read_text())["passed"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32", "line.csv", "out"]


def test_too_little_data_for_the_window_is_refused(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "short.csv", normal_rows(100, seed=1))
    with pytest.raises(ExportError, match="validation part has no window of 32 rows"):
        run_train(_options(tmp_path, csv, "out", window=32))
    assert not (tmp_path / "out").exists()


def test_non_empty_out_is_refused_without_force(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "line.csv", normal_rows(200, seed=1))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="--force"):
        run_train(_options(tmp_path, csv, "out"))
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"


# --- reading the CSVs --------------------------------------------------------------------


def test_non_numeric_cell_names_file_column_and_row(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "historian.csv", normal_rows(30, seed=1))
    lines = csv.read_text().splitlines()
    cells = lines[16].split(",")  # line 17 of the file (the header is line 1)
    cells[1] = "abc"
    lines[16] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ExportError) as err:
        read_table(csv)
    assert "historian.csv: column 'flow' row 17: 'abc' is not a number" in str(err.value)


def test_unknown_column_lists_available_ones(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "line.csv", normal_rows(30, seed=1))
    with pytest.raises(ExportError, match="unknown column 'speed'") as err:
        read_table(csv, ["flow", "speed"])
    assert "available columns: flow, pressure, temp, current" in str(err.value)
    table = read_table(csv, ["temp", "flow"])
    assert table.columns == ["temp", "flow"] and table.segments[0].shape == (30, 2)


def test_separator_decimal_comma_and_ignored_columns(tmp_path: Path) -> None:
    assert detect_separator("time;a;b\n") == ";" and detect_separator("time,a,b\n") == ","
    csv = tmp_path / "de.csv"
    csv.write_text("Date;a;b;ChangePoint;\n2025-01-01;1,5;2;0;\n2025-01-02;-0,25;3.5;1;\n")
    table = read_table(csv)
    assert table.columns == ["a", "b"]
    np.testing.assert_array_equal(table.segments[0], [[1.5, 2.0], [-0.25, 3.5]])


def test_empty_and_nan_rows_are_dropped_and_split_windows(tmp_path: Path) -> None:
    rows = ["time,a,b"] + [f"{i},{i}.0,{2 * i}.0" for i in range(20)]
    rows[6] = "5,,10.0"  # empty cell
    rows[12] = "11,NaN,22.0"
    csv = tmp_path / "gaps.csv"
    csv.write_text("\n".join(rows) + "\n")
    table = read_table(csv)
    assert table.dropped == 2 and table.rows == 18
    assert [len(s) for s in table.segments] == [5, 5, 8]
    scaler = RobustScaler.fit(np.concatenate(table.segments))
    windows = make_windows(table.segments, scaler, 4, 1)
    assert len(windows) == 2 + 2 + 5  # no window spans a dropped row
    assert count_windows(table.segments, 4, 1) == len(windows)
    assert count_windows(table.segments, 4, 3) == len(make_windows(table.segments, scaler, 4, 3))
    for w in windows:  # consecutive samples inside a window are consecutive rows
        raw = w[:, 0] * scaler.scale[0] + scaler.center[0]
        np.testing.assert_allclose(np.diff(raw), 1.0, atol=1e-4)


def test_windows_never_span_files_or_parts(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", normal_rows(100, seed=1))
    b = write_csv(
        tmp_path / "b.csv", normal_rows(60, seed=2)[:, [3, 2, 1, 0]], columns=CHANNELS[::-1]
    )
    tables = read_tables([a, b])
    np.testing.assert_allclose(tables[1].segments[0][0], normal_rows(60, seed=2)[0], atol=1e-5)
    split = split_tables(tables)
    assert [split.rows(p) for p in ("train", "val", "cal")] == [70 + 42, 15 + 9, 15 + 9]
    scaler = RobustScaler.fit(split.stacked("train"))
    assert len(make_windows(split.train, scaler, 8, 1)) == (70 - 7) + (42 - 7)
    assert len(make_windows(split.cal, scaler, 8, 1)) == (15 - 7) + (9 - 7)


def test_inputs_with_different_columns_are_refused(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", normal_rows(30, seed=1))
    b = write_csv(tmp_path / "b.csv", normal_rows(30, seed=1)[:, :3], columns=CHANNELS[:3])
    with pytest.raises(ExportError, match=r"b\.csv: columns differ .* missing current"):
        read_tables([a, b])


def test_tag_map_units_and_errors(tmp_path: Path) -> None:
    assert read_tag_units(write_tag_map(tmp_path / "tags.toml"))["pressure"] == "bar"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[tag]]\nname = "flow"\naddress = 0\ntype = "float32"\nunit = 3\n')
    with pytest.raises(ExportError, match=r"bad\.toml: tag\[0\]\.unit: must be a str"):
        read_tag_units(bad)


def test_compare_counts_decision_flips() -> None:
    fp32 = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    int8 = np.array([0.1, 0.26, 0.3, 0.4], dtype=np.float32)
    parity = compare(fp32, int8, threshold=0.25)
    assert parity.decision_flips == 1 and parity.decision_flip_fraction == 0.25
    assert parity.max_abs_diff == pytest.approx(0.06, abs=1e-6)
    assert not parity.passed


# --- the command line --------------------------------------------------------------------


def test_cli_error_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "historian.csv", normal_rows(30, seed=1))
    csv.write_text(csv.read_text().replace("\n", "\nx,1,2,3,oops,0\n", 1))
    result = _run_cli("train", "--input", str(csv), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("lineside-export: error: ")
    assert "column 'current' row 2: 'oops' is not a number" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_rejects_bad_options_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from export.cli import main

    csv = write_csv(tmp_path / "line.csv", normal_rows(30, seed=1))
    status = main(["train", "--input", str(csv), "--out", str(tmp_path / "o"), "--window", "1"])
    assert status == 2
    assert "lineside-export: error: --window must be at least 2" in capsys.readouterr().err
