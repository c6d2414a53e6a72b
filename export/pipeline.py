"""`lineside-export train` end to end: CSVs -> scaler, SPC limits, VAE -> ONNX -> bundle.

1. read and check the CSVs, split each file 70/15/15 (train / validation / calibration)
2. fit the RobustScaler and the I-MR limits on the raw train rows
3. train the VAE on scaled train windows, early-stopping on the validation windows
4. export the fp32 scoring model, quantise it to int8
5. score the calibration windows with the fp32 model: threshold = quantile * margin
6. compare int8 with fp32 on the same windows (parity.json); fail on a parity loss
7. write manifest.json, verify with load_bundle, move the bundle into place
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.core.scaler import RobustScaler
from agent.core.spc import fit_imr
from agent.ops.bundles import Bundle
from export import bundle as bundle_io
from export.data import (
    count_windows,
    make_windows,
    read_tables,
    read_tag_units,
    split_tables,
)
from export.errors import ExportError
from export.parity import (
    Parity,
    calibrate_threshold,
    check_parity,
    compare,
    score_onnx,
    write_parity,
)
from export.quantize import quantize_int8

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainOptions:
    """Everything `lineside-export train` takes on its command line."""

    inputs: list[Path]
    out: Path
    columns: list[str] | None = None
    window: int = 32
    hop: int = 1
    epochs: int = 60
    seed: int = 0
    tag_map: Path | None = None
    model_version: int = 1
    label: str = ""
    threshold_quantile: float = 0.999
    threshold_margin: float = 1.25
    quiet: bool = False
    force: bool = False
    allow_parity_loss: bool = False


@dataclass(frozen=True)
class TrainOutcome:
    """The published bundle, its manifest as written, and the int8 parity figures."""

    bundle: Bundle
    manifest: dict[str, Any]
    parity: Parity
    summary: str


def validate(options: TrainOptions) -> None:
    """Reject option values that cannot work, before any data is read."""
    checks = [
        (options.window >= 2, f"--window must be at least 2 (got {options.window})"),
        (options.hop >= 1, f"--hop must be at least 1 (got {options.hop})"),
        (options.epochs >= 1, f"--epochs must be at least 1 (got {options.epochs})"),
        (options.seed >= 0, f"--seed must be non-negative (got {options.seed})"),
        (
            options.model_version >= 1,
            f"--model-version must be at least 1 (got {options.model_version})",
        ),
        (
            0.0 < options.threshold_quantile <= 1.0,
            f"--threshold-quantile must be in (0, 1] (got {options.threshold_quantile})",
        ),
        (
            options.threshold_margin > 0.0,
            f"--threshold-margin must be positive (got {options.threshold_margin})",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ExportError(message)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_train(options: TrainOptions, log: Log | None = None) -> TrainOutcome:
    """Train, export, quantise, calibrate and publish a bundle; raise ExportError on a problem."""
    say: Log = (lambda _line: None) if options.quiet else (log or _stderr)
    validate(options)
    bundle_io.check_out_dir(options.out, options.force)
    units = read_tag_units(options.tag_map) if options.tag_map is not None else {}

    tables = read_tables(options.inputs, options.columns)
    columns = tables[0].columns
    for table in tables:
        say(f"read {table.path.name}: {table.rows} rows kept, {table.dropped} dropped (empty/NaN)")
    split = split_tables(tables)
    rows = {part: split.rows(part) for part in ("train", "val", "cal")}
    rows["dropped"] = sum(t.dropped for t in tables)

    for part, name in (("train", "training"), ("val", "validation"), ("cal", "calibration")):
        if count_windows(getattr(split, part), options.window, options.hop) == 0:
            raise ExportError(
                f"the {name} part has no window of {options.window} rows "
                f"({rows[part]} rows in all, split per file and at dropped rows); "
                "give more data or a smaller --window"
            )
    train_rows = split.stacked("train")
    scaler = RobustScaler.fit(train_rows)
    spc = fit_imr(train_rows, nsigmas=3.0, sigma="larger")
    windows = {
        part: make_windows(getattr(split, part), scaler, options.window, options.hop)
        for part in ("train", "val", "cal")
    }
    say(
        f"{len(columns)} channels; windows of {options.window} (hop {options.hop}): "
        f"train {len(windows['train'])}, val {len(windows['val'])}, cal {len(windows['cal'])}"
    )
    missing_units = [c for c in columns if c not in units]
    if options.tag_map is not None and missing_units:
        say(f"tag map has no unit for: {', '.join(missing_units)}")

    # torch is imported only now, so a bad CSV or option is reported without waiting for it.
    from export.onnx_export import channel_baseline, export_onnx
    from export.train import TrainConfig, train_vae

    config = TrainConfig(epochs=options.epochs, seed=options.seed)
    result = train_vae(windows["train"], windows["val"], config, log=say)
    baseline = channel_baseline(result.model, windows["val"])

    with bundle_io.staging_dir(options.out) as staging:
        fp32_path = staging / bundle_io.FP32_NAME
        int8_path = staging / bundle_io.INT8_NAME
        export_onnx(result.model, fp32_path, baseline)
        quantization = quantize_int8(fp32_path, int8_path, per_channel=True)
        say(f"exported {fp32_path.name} and {int8_path.name}")

        cal_fp32, _ = score_onnx(fp32_path, windows["cal"])
        cal_int8, _ = score_onnx(int8_path, windows["cal"])
        q, margin = options.threshold_quantile, options.threshold_margin
        threshold = calibrate_threshold(cal_fp32, q, margin)
        parity = compare(cal_fp32, cal_int8, threshold)
        write_parity(staging / bundle_io.PARITY_NAME, parity, quantization)
        check_parity(parity, options.allow_parity_loss)
        if not parity.passed:
            say("warning: int8 parity check failed; exporting anyway (--allow-parity-loss)")

        manifest = bundle_io.build_manifest(
            model_version=options.model_version,
            label=options.label or f"{options.inputs[0].stem} v{options.model_version}",
            channels=[{"name": c, "unit": units.get(c, "")} for c in columns],
            window=options.window,
            hop=options.hop,
            scaler=scaler,
            spc=spc,
            detector={
                "kind": "vae",
                "threshold": threshold,
                "threshold_method": (
                    f"quantile {q:g} of {cal_fp32.size} held-out normal windows x {margin:g}"
                ),
                "score": "max over channels of the per-channel reconstruction error / "
                "its mean on held-out normal windows",
                "channel_baseline": [float(b) for b in baseline],
                "beta": config.beta,
                "latent": config.latent,
                "hidden": config.hidden,
            },
            bundle_dir=staging,
            training={
                "rows_train": rows["train"],
                "rows_val": rows["val"],
                "rows_cal": rows["cal"],
                "rows_dropped": rows["dropped"],
                "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch,
                "val_loss": result.val_loss,
                "seed": options.seed,
                "inputs": [p.name for p in options.inputs],
                # for the explainer: which tags usually move together (issue 8)
                "correlation": np.nan_to_num(np.corrcoef(train_rows, rowvar=False))
                .round(4)
                .tolist(),
            },
        )
        bundle_io.write_manifest(staging, manifest)
        published = bundle_io.publish(staging, options.out, options.force)
    return TrainOutcome(
        bundle=published,
        manifest=manifest,
        parity=parity,
        summary=bundle_io.summary(published, parity, rows),
    )
