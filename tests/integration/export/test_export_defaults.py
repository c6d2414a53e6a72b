"""The export's data-driven defaults end to end: drifting channels found on a drift-only file,
the threshold set by the false-alarm budget, int8 refused by the gate -> an fp32 bundle that
signs, installs and runs, and an int8 model that cannot saturate a non-VNNI x86 kernel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from agent.bundles.bundle import load_bundle
from agent.bundles.store import ModelStore
from agent.cli.main import main as lineside
from agent.pipeline.detectors.vae import VaeModel
from agent.pipeline.replay import replay_csv
from export.cli import main as lineside_export
from export.pipeline import TrainOptions, run_train
from export.quantize import REDUCED_WEIGHT_MAX
from tests.export_data import CHANNELS, normal_rows, write_csv

ROWS = 600


def drift_only_rows(n: int, seed: int) -> np.ndarray:
    """Four channels: `temp` and `current` ramp through the file (a warming rig), the other
    two hold their level with noise; nothing else happens."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    rows = np.column_stack(
        [
            50.0 + rng.normal(0.0, 0.5, n),
            4.0 + rng.normal(0.0, 0.05, n),
            60.0 + 15.0 * t + rng.normal(0.0, 0.5, n),
            12.0 - 3.0 * t + rng.normal(0.0, 0.1, n),
        ]
    )
    return rows


def _options(tmp: Path, csv: Path, **kw: object) -> TrainOptions:
    base = {"inputs": [csv], "out": tmp / "bundle", "epochs": 3, "seed": 0, "quiet": False}
    return TrainOptions(**{**base, **kw})  # type: ignore[arg-type]


def test_a_drift_only_file_gets_its_drifters_found_printed_and_recorded(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "warming.csv", drift_only_rows(ROWS, 1))
    lines: list[str] = []
    outcome = run_train(_options(tmp_path, csv), log=lines.append)
    detector = outcome.manifest["detector"]
    assert detector["relative_channels"] == ["temp", "current"]
    drift = outcome.manifest["training"]["drift"]
    assert drift["chosen_by"] == "auto" and drift["relative_channels"] == ["temp", "current"]
    assert drift["trend_share"]["temp"] > 0.9 and drift["trend_share"]["flow"] < 0.1
    said = [line for line in lines if line.startswith("drift:")]
    assert len(said) == 1 and "temp (trend explains" in said[0] and "current" in said[0]
    # the drifters are left out of the shift detector too
    not_watched = detector["shift"]["fit"]["not_watched"]
    assert set(not_watched) == {"temp", "current"}
    # and a run that starts where the last one ended raises no VAE alarm for the level
    later = drift_only_rows(ROWS, 2)
    later[:, 2] += 15.0
    later[:, 3] -= 3.0
    replay = replay_csv(outcome.bundle.path, write_csv(tmp_path / "later.csv", later))
    assert not replay.vae_alarm[100:].any()


def test_relative_named_or_none_replaces_the_finding(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "warming.csv", drift_only_rows(ROWS, 1))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # modelled absolute, the drifters' SPC charts alarm on the held-out rows: waived here
    none = run_train(
        _options(tmp_path / "a", csv, relative=["none"], quiet=True, allow_spc_alarms=True)
    )
    assert none.manifest["detector"]["relative_channels"] == []
    assert none.manifest["training"]["drift"]["chosen_by"] == "--relative"
    named = run_train(
        _options(tmp_path / "b", csv, relative=["flow"], quiet=True, allow_spc_alarms=True)
    )
    assert named.manifest["detector"]["relative_channels"] == ["flow"]


def test_threshold_meets_the_budget_and_says_so(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "line.csv", normal_rows(900, 11))
    outcome = run_train(_options(tmp_path, csv, quiet=True, false_alarms_per_hour=0.5))
    m = outcome.bundle.manifest
    assert m.threshold_method.startswith("false-alarm budget 0.5/h at 1 s per row")
    rule = outcome.manifest["detector"]["threshold_rule"]
    assert rule["rule"] == "false-alarm budget" and rule["row_seconds"] == 1.0
    assert rule["exceed_share"] == pytest.approx(0.5 / 3600)
    assert m.threshold >= rule["held_out_max"]
    assert m.shift is not None and "false-alarm budget 0.5/h" in m.shift.method


def test_the_score_is_chosen_on_held_out_windows_unless_named(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "line.csv", normal_rows(ROWS, 7))
    lines: list[str] = []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    chosen = run_train(_options(tmp_path / "a", csv), log=lines.append)
    record = chosen.manifest["training"]["score_choice"]
    assert set(record["sensitivity"]) == {"max", "mean", "max+latent", "mean+latent"}
    best = max(record["sensitivity"].values())
    assert record["sensitivity"][record["chosen"]] == best > 0.0
    assert chosen.manifest["detector"]["score_reduce"] == record["chosen"]
    assert any(line.startswith(f"score {record['chosen']}: catches the most") for line in lines)
    named = run_train(_options(tmp_path / "b", csv, score="mean", quiet=True))
    assert named.manifest["detector"]["score_reduce"] == "mean"
    assert "score_choice" not in named.manifest["training"]


def test_int8_refused_by_the_gate_ships_fp32_which_installs_and_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "line.csv", normal_rows(ROWS, 3))
    lines: list[str] = []
    # a gate no quantised model can pass: no flip, and not the smallest divergence near T
    options = _options(tmp_path, csv, max_int8_flip_fraction=0.0, max_int8_divergence=0.0)
    outcome = run_train(options, log=lines.append)
    assert not outcome.parity.passed
    assert any("the bundle ships the fp32 model only" in line for line in lines)
    m = outcome.bundle.manifest
    assert m.models == {"fp32": "vae.onnx"}
    assert not (outcome.bundle.path / "vae.int8.onnx").exists()
    assert set(m.files) == {"vae.onnx", "parity.json", "golden.npz"}
    parity = json.loads((outcome.bundle.path / "parity.json").read_text())
    assert parity["passed"] is False and parity["refused_because"]
    assert "int8 refused: fp32 shipped alone" in outcome.summary

    keys = tmp_path / "keys"
    assert lineside_export(["keygen", "--out", str(keys)]) == 0
    key = next(keys.glob("*.key"))
    signed = tmp_path / "line.bundle"
    argv = ["sign", str(outcome.bundle.path), "--key", str(key), "--out", str(signed)]
    assert lineside_export(argv) == 0
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / key.with_suffix(".pub").name).write_bytes(key.with_suffix(".pub").read_bytes())
    capsys.readouterr()
    state = tmp_path / "state"
    argv = ["bundle", "install", str(signed), "--state-dir", str(state), "--trust", str(trust)]
    assert lineside(argv) == 0
    out = capsys.readouterr().out
    assert "installed model 1" in out and "ships no int8 model" in out
    installed = load_bundle(ModelStore(state).current_link)
    model = VaeModel(installed, precision="int8")  # the site default asks for int8
    assert (model.requested, model.precision) == ("int8", "fp32")
    assert "ships no int8 model" in model.fallback
    replay = replay_csv(installed.path, write_csv(tmp_path / "again.csv", normal_rows(200, 4)))
    assert np.isfinite(replay.score[20:]).all()


def test_int8_off_its_golden_outputs_here_runs_fp32_and_says_why(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "line.csv", normal_rows(ROWS, 5))
    outcome = run_train(_options(tmp_path, csv, quiet=True))
    assert outcome.bundle.manifest.models["int8"] == "vae.int8.onnx"
    # what another CPU's int8 kernels would give: golden int8 outputs this CPU does not match
    golden = outcome.bundle.path / "golden.npz"
    with np.load(golden) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["score_int8"] = arrays["score_int8"] * 1.5 + 0.5
    with golden.open("wb") as f:
        np.savez(f, **arrays)
    raw = json.loads((outcome.bundle.path / "manifest.json").read_text())
    from agent.bundles.bundle import sha256_file

    raw["files"]["golden.npz"] = {"sha256": sha256_file(golden), "size": golden.stat().st_size}
    (outcome.bundle.path / "manifest.json").write_text(json.dumps(raw, indent=2) + "\n")
    bundle = load_bundle(outcome.bundle.path)
    model = VaeModel(bundle, precision="int8")
    assert model.precision == "fp32"
    assert "vae.int8.onnx score differs from the golden outputs on this CPU" in model.fallback
    from agent.bundles.checks import check_models

    warnings = check_models(bundle.path, bundle.manifest)
    assert len(warnings) == 1 and "this device runs the fp32 model instead" in warnings[0]


def test_int8_weights_fit_a_non_vnni_kernel_without_saturation(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "line.csv", normal_rows(ROWS, 6))
    outcome = run_train(_options(tmp_path, csv, quiet=True))
    model = onnx.load(str(outcome.bundle.model_path("int8")))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # the quantised weights, of either format (MatMulInteger, or QDQ's DequantizeLinear)
    weights = [w for w in inits.values() if w.dtype == np.int8 and w.size > 1]
    assert weights, "the int8 model has integer weights"
    for w in weights:
        assert w.dtype == np.int8
        # u8 activation x s8 weight, two products summed into int16 (vpmaddubsw on AVX2
        # without VNNI): 2 x 255 x |w| must fit in 32,767
        assert int(np.abs(w.astype(np.int32)).max()) <= REDUCED_WEIGHT_MAX
        assert np.iinfo(np.int16).max >= 2 * 255 * REDUCED_WEIGHT_MAX
    parity = json.loads((outcome.bundle.path / "parity.json").read_text())
    assert parity["quantization"]["reduce_range"] is True
    assert outcome.bundle.manifest.channel_names == CHANNELS
