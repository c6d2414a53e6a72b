"""The fusion of the VAE and SPC alarms, and score smoothing: bundle, site, monitor, replay."""

from __future__ import annotations

import doctest
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import agent.pipeline.events.fusion as fusion_module
import export.calibrate as calibrate_module
from agent.bundles.bundle import load_bundle
from agent.bundles.manifest import parse_manifest
from agent.cli.main import main
from agent.config import load_config
from agent.core.tabular import read_csv
from agent.errors import BundleError, ConfigError
from agent.pipeline.events.fusion import FUSIONS, LEGACY_FUSION, SHIFT_FUSIONS, choose_fusion
from agent.pipeline.replay import DEFAULT_DETECTION, replay_rows
from export.calibrate import AUTO_FUSION, DEFAULT_FUSION, ewma
from export.errors import ExportError
from export.pipeline import TrainOptions, validate
from tests.config_helpers import SITE, write_site


def _faulty(bundle_dir: Path, tmp_path: Path) -> np.ndarray:
    """Simulated normal rows with a step on one channel from row 150 on."""
    from agent.demo.run import write_historian

    source = tmp_path / "in.csv"
    write_historian(source, rows=300, seed=3)
    values = read_csv(source, load_bundle(bundle_dir).manifest.channel_names).values
    sigma = np.asarray(load_bundle(bundle_dir).manifest.spc.sigma)
    values[150:, 1] += 4.0 * sigma[1]
    return values


def _replay(bundle_dir: Path, values: np.ndarray, **over: object) -> dict[str, np.ndarray]:
    rows = list(replay_rows(load_bundle(bundle_dir), values, replace(DEFAULT_DETECTION, **over)))
    return {
        "score": np.array([r[0] for r in rows]),
        "vae": np.array([r[1] for r in rows]),
        "spc": np.array([r[2] for r in rows]),
        "fused": np.array([r[4] for r in rows]),
    }


def test_doctests_of_fusion_and_calibration() -> None:
    for module in (fusion_module, calibrate_module):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


def test_export_records_its_fusion_choice_and_why(bundle_dir: Path) -> None:
    raw = json.loads((bundle_dir / "manifest.json").read_text())
    detector = raw["detector"]
    assert detector["fusion"] == DEFAULT_FUSION == "vae-plus-shift"
    assert detector["smoothing"] == 1.0
    basis = detector["fusion_basis"]
    assert basis["held_out_rows"] > 0 and basis["chosen_by"] == DEFAULT_FUSION
    assert basis["auto_choice"] == choose_fusion_from(basis["spc_alarm_share"])
    assert load_bundle(bundle_dir).manifest.fusion == DEFAULT_FUSION


def choose_fusion_from(shares: dict[str, float]) -> str:
    """The rule of choose_fusion, restated on the recorded shares."""
    for mode in ("vae-or-spc", "vae-or-sustained-spc"):
        if shares[mode] <= fusion_module.SPC_QUIET_SHARE:
            return mode
    return "vae"


def test_choose_fusion_prefers_the_most_inclusive_quiet_mode() -> None:
    quiet = np.zeros(500, dtype=bool)
    blips = quiet.copy()
    blips[::20] = True  # 5 % of rows, never sustained
    assert choose_fusion(quiet, sustain=16)[0] == "vae-or-spc"
    assert choose_fusion(blips, sustain=16)[0] == "vae-or-sustained-spc"
    assert choose_fusion(~quiet, sustain=16)[0] == "vae"


# The shift modes need the shift alarm, which replay_rows does not yield: see test_shift.py
@pytest.mark.parametrize("mode", [m for m in FUSIONS if m not in SHIFT_FUSIONS])
def test_monitor_fuses_as_told(bundle_dir: Path, tmp_path: Path, mode: str) -> None:
    values = _faulty(bundle_dir, tmp_path)
    out = _replay(bundle_dir, values, fusion=mode)
    assert out["spc"].any(), "the step must raise the SPC alarm"
    vae, spc, fused = out["vae"], out["spc"], out["fused"]
    if mode == "vae":
        assert (fused == vae).all()
    elif mode == "vae-or-spc":
        assert (fused == (vae | spc)).all()
    else:
        assert (fused <= (vae | spc)).all() and (fused >= vae).all()
        run = 0
        for v, s, f in zip(vae, spc, fused, strict=True):
            run = run + 1 if s else 0
            assert f == (v or run >= load_bundle(bundle_dir).manifest.window)


def test_bundle_without_fusion_keeps_either_alarm(bundle_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(bundle_dir, old)
    raw = json.loads((old / "manifest.json").read_text())
    del raw["detector"]["fusion"]
    (old / "manifest.json").write_text(json.dumps(raw))
    assert load_bundle(old).manifest.fusion is None
    out = _replay(old, _faulty(old, tmp_path))
    assert LEGACY_FUSION == "vae-or-spc"
    assert (out["fused"] == (out["vae"] | out["spc"])).all()


@pytest.mark.parametrize(
    ("field", "value"), [("fusion", "both"), ("smoothing", 0.0), ("smoothing", "x")]
)
def test_bad_manifest_decision_field_is_refused(
    bundle_dir: Path, field: str, value: object
) -> None:
    raw = json.loads((bundle_dir / "manifest.json").read_text())
    raw["detector"][field] = value
    with pytest.raises(BundleError, match=f"detector.{field}"):
        parse_manifest(raw)


def test_smoothing_thresholds_the_ewma_of_the_scores(bundle_dir: Path, tmp_path: Path) -> None:
    values = _faulty(bundle_dir, tmp_path)
    raw = _replay(bundle_dir, values)["score"]
    smooth = _replay(bundle_dir, values, smoothing=0.25)["score"]
    have = ~np.isnan(raw)
    assert np.allclose(smooth[have], ewma(raw[have], 0.25))
    assert not np.allclose(smooth[have], raw[have])


def test_demo_site_keeps_spc_in_its_alarm() -> None:
    # The demo extruder's variance and stuck faults are SPC's to catch (issue: keep the demo).
    assert load_config(SITE).detection.fusion == "vae-or-spc"


def test_site_detection_fusion_and_smoothing(tmp_path: Path) -> None:
    text = SITE.read_text().replace('fusion = "vae-or-spc"', 'fusion = "vae"\nsmoothing = 0.3')
    config = load_config(write_site(tmp_path, text))
    assert (config.detection.fusion, config.detection.smoothing) == ("vae", 0.3)
    plain = SITE.read_text().replace('fusion = "vae-or-spc"', "")
    default = load_config(write_site(tmp_path, plain))
    assert (default.detection.fusion, default.detection.smoothing) == (None, None)


@pytest.mark.parametrize(
    ("line", "field"),
    [('fusion = "and"', "detection.fusion"), ("smoothing = 1.5", "detection.smoothing")],
)
def test_bad_site_detection_names_the_field(tmp_path: Path, line: str, field: str) -> None:
    text = SITE.read_text().replace('fusion = "vae-or-spc"', line)
    with pytest.raises(ConfigError) as info:
        load_config(write_site(tmp_path, text))
    assert info.value.field == field


def test_export_refuses_bad_smoothing_and_fusion(tmp_path: Path) -> None:
    base = TrainOptions(inputs=[tmp_path / "x.csv"], out=tmp_path / "out")
    with pytest.raises(ExportError, match="--smoothing"):
        validate(replace(base, smoothing=0.0))
    with pytest.raises(ExportError, match="--fusion"):
        validate(replace(base, fusion="spc"))
    validate(replace(base, fusion=AUTO_FUSION, smoothing=0.3))


def test_score_cli_fusion_override(bundle_dir: Path, tmp_path: Path) -> None:
    import csv

    source = tmp_path / "in.csv"
    values = _faulty(bundle_dir, tmp_path)
    names = load_bundle(bundle_dir).manifest.channel_names
    with source.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(values.tolist())
    out = tmp_path / "out.csv"
    argv = ["score", "--bundle", str(bundle_dir), "--input", str(source), "--output", str(out)]
    assert main([*argv, "--fusion", "vae"]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert all(r["anomaly"] == r["vae_alarm"] for r in rows)
    assert any(r["spc_alarm"] == "1" for r in rows), "the override must have had work to do"
    assert main([*argv, "--smoothing", "2"]) == 2
