"""`lineside-export train` end to end: CSVs -> scaler, SPC limits, VAE -> ONNX -> bundle.

1. read and check the CSVs, leave out the columns that are not process signals (the tag map's
   `detect`/`role`, then constant, binary, setpoint-like and counter columns:
   export/selection.py), split each file 70/15/15 (train / validation / calibration)
2. fit the RobustScaler (each scale floored at the channel's normal std) and the I-MR limits
   on the raw train rows; refuse limits whose SPC alarm holds on more than
   `--max-spc-alarm-share` of the held-out normal rows, naming the channels holding it
3. find the drifting channels on the normal rows (export/drift.py; `--relative` names them
   instead), train the VAE (or VAE-GAN) on scaled, clipped train windows (drifting channels
   minus their window mean), early-stopping on the validation windows
4. export the fp32 scoring model
5. score the held-out windows (validation + calibration) with the fp32 model: the threshold
   meets the false-alarm budget (export/budget.py), as does the shift detector's
6. quantise to int8 dynamically and statically, keep the one closer to fp32 on the held-out
   windows and their probes (parity.json records both); when int8 fails the gate, ship fp32
   alone with a warning
7. write manifest.json, verify with load_bundle, move the bundle into place
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.bundles.bundle import Bundle
from agent.bundles.manifest import FUSIONS, Channel, Manifest
from agent.core.scaler import RobustScaler
from agent.core.spc import fit_imr
from export import bundle as bundle_io
from export.budget import FALSE_ALARMS_PER_HOUR, row_seconds, vae_threshold
from export.calibrate import (
    AUTO_FUSION,
    DEFAULT_FUSION,
    MAX_SPC_ALARM_SHARE,
    check_spc_alarm_share,
    fusion_for,
    smoothed_parts,
    spc_trace,
)
from export.data import Table, count_windows, make_windows, read_tables, split_tables
from export.defaults import (
    DEFAULT_BETA,
    DEFAULT_WINDOW,
    MAX_FLIP_FRACTION,
    MAX_NEAR_THRESHOLD_DIFF,
)
from export.drift import Drift, find_drift, named_drift
from export.errors import ExportError
from export.latent import SCORES, split_score
from export.parity import (
    Parity,
    parity_warning,
    quantize_best,
    score_onnx,
    write_parity,
)
from export.progress import ProgressBar, wants_bar
from export.selection import read_tag_map_tags, select_columns
from export.shift_fit import shift_for_bundle
from export.sign import write_golden

Log = Callable[[str], None]
FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TrainOptions:
    """Everything `lineside-export train` takes on its command line."""

    inputs: list[Path]
    out: Path
    columns: list[str] | None = None
    window: int = DEFAULT_WINDOW
    hop: int = 1
    epochs: int = 60
    seed: int = 0
    model: str = "vae"
    #: None: the drifting channels are found on the data (export/drift.py); ["none"]: no
    #: channel is relative; else the channels named
    relative: list[str] | None = None
    #: None: chosen on the held-out windows (export/score_choice.py)
    score: str | None = None
    encoder: str = "dense"
    beta: float = DEFAULT_BETA
    tag_map: Path | None = None
    model_version: int = 1
    label: str = ""
    #: The VAE and shift thresholds meet this budget (export/budget.py) unless a quantile
    #: (and margin) or a shift margin is given, the older rule.
    false_alarms_per_hour: float = FALSE_ALARMS_PER_HOUR
    threshold_quantile: float | None = None
    threshold_margin: float | None = None
    smoothing: float = 1.0
    fusion: str = DEFAULT_FUSION
    shift_margin: float | None = None
    max_int8_flip_fraction: float = MAX_FLIP_FRACTION
    max_int8_divergence: float = MAX_NEAR_THRESHOLD_DIFF
    quiet: bool = False
    force: bool = False
    allow_parity_loss: bool = False
    keep_all_columns: bool = False
    max_spc_alarm_share: float = MAX_SPC_ALARM_SHARE
    allow_spc_alarms: bool = False


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
        (options.model in MODELS, f"--model must be one of {', '.join(MODELS)}"),
        (
            options.score is None or options.score in SCORES,
            f"--score must be max or mean, optionally +latent ({', '.join(SCORES)})",
        ),
        (options.beta >= 0.0, f"--beta must be non-negative (got {options.beta})"),
        (options.encoder in ("dense", "conv"), "--encoder must be dense or conv"),
        (options.seed >= 0, f"--seed must be non-negative (got {options.seed})"),
        (
            options.model_version >= 1,
            f"--model-version must be at least 1 (got {options.model_version})",
        ),
        (
            options.threshold_quantile is None or 0.0 < options.threshold_quantile <= 1.0,
            f"--threshold-quantile must be in (0, 1] (got {options.threshold_quantile})",
        ),
        (
            options.threshold_margin is None or options.threshold_margin > 0.0,
            f"--threshold-margin must be positive (got {options.threshold_margin})",
        ),
        (
            options.shift_margin is None or options.shift_margin > 0.0,
            f"--shift-margin must be positive (got {options.shift_margin})",
        ),
        (
            0.0 < options.false_alarms_per_hour <= 3600.0,
            "--false-alarms-per-hour must be positive, e.g. 0.125 for one per 8 h "
            f"(got {options.false_alarms_per_hour})",
        ),
        (
            0.0 <= options.max_int8_flip_fraction <= 1.0,
            "--max-int8-flips must be a share in [0, 1], e.g. 0.01 for 1 % "
            f"(got {options.max_int8_flip_fraction})",
        ),
        (
            options.max_int8_divergence >= 0.0,
            "--max-int8-divergence must be a non-negative share of the threshold, e.g. 0.1 "
            f"(got {options.max_int8_divergence})",
        ),
        (
            0.0 < options.smoothing <= 1.0,
            f"--smoothing must be in (0, 1], 1 for none (got {options.smoothing})",
        ),
        (
            0.0 <= options.max_spc_alarm_share <= 1.0,
            "--max-spc-alarm-share must be a share in [0, 1], e.g. 0.05 for 5 % "
            f"(got {options.max_spc_alarm_share})",
        ),
        (
            options.fusion in (*FUSIONS, AUTO_FUSION),
            f"--fusion must be one of {', '.join(FUSIONS)} or {AUTO_FUSION}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ExportError(message)


#: A channel's scale is at least this fraction of its standard deviation over all the normal
#: rows given. A quantised sensor that sat on one value through the train part (SKAB's flow
#: meter reads 32.0 for minutes, then 31.0) has an IQR of zero and a std near zero there; scaled
#: by that, the next ordinary step reads as a 1000-sigma event. On SKAB a floor of the whole
#: std (0.1 before) cut the false alarm rate from 25% to 17% at the same miss rate.
SCALE_FLOOR_OF_STD = 1.0


MODELS = ("vae", "vae-gan")
#: Weight of the decoder's adversarial loss for `--model vae-gan`, against an MSE near 1.
ADVERSARIAL_WEIGHT = 0.01


#: `--relative none`: no channel relative, drift detection off.
NO_RELATIVE = "none"


def drift_of(tables: list[Table], columns: list[str], relative: list[str] | None) -> Drift:
    """The relative channels: found on the normal rows, or as `--relative` names them."""
    streams = [np.concatenate(t.segments) for t in tables if t.segments]
    if relative is None:
        return find_drift(streams, columns)
    names = [] if relative == [NO_RELATIVE] else relative
    relative_mask(columns, names)  # refuses unknown names
    return named_drift(streams, columns, names)


def relative_mask(columns: list[str], relative: list[str] | None) -> npt.NDArray[np.float32]:
    """1.0 for each column modelled relative to its window mean (`--relative`), else 0.0."""
    names = relative or []
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise ExportError(
            f"--relative names unknown column(s) {', '.join(unknown)}; "
            f"the feature columns are {', '.join(columns)}"
        )
    return np.array([1.0 if c in names else 0.0 for c in columns], dtype=np.float32)


def floored_scaler(train_rows: FloatArray, normal_rows: FloatArray) -> RobustScaler:
    """RobustScaler of the train rows, each scale floored at a fraction of the normal std."""
    fitted = RobustScaler.fit(train_rows)
    floor = SCALE_FLOOR_OF_STD * np.std(normal_rows, axis=0)
    return RobustScaler(center=fitted.center, scale=np.maximum(fitted.scale, floor))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def training_correlation(rows: npt.NDArray[np.float64]) -> list[list[float]]:
    """Pearson correlation between channels; 0 where a channel never moved (it has none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(rows, rowvar=False)
    return [[round(v, 4) for v in row] for row in np.nan_to_num(np.atleast_2d(corr)).tolist()]


def run_train(options: TrainOptions, log: Log | None = None) -> TrainOutcome:
    """Train, export, quantise, calibrate and publish a bundle; raise ExportError on a problem."""
    say: Log = (lambda _line: None) if options.quiet else (log or _stderr)
    validate(options)
    bundle_io.check_out_dir(options.out, options.force)
    tags = read_tag_map_tags(options.tag_map) if options.tag_map is not None else {}
    units = {name: tag.unit for name, tag in tags.items()}

    tables = read_tables(options.inputs, options.columns)
    selection = select_columns(tables, options.columns, tags, options.keep_all_columns)
    for line in selection.lines():
        say(line)
    if selection.left_out:
        # read again: a row dropped only for an empty cell of a column left out comes back
        tables = read_tables(options.inputs, selection.kept)
    columns = tables[0].columns
    for table in tables:
        files = f" ({table.files} files)" if table.files > 1 else ""
        why = f"empty/NaN, {table.not_good} not good quality" if table.not_good else "empty/NaN"
        kept = f"{table.rows} rows kept, {table.dropped} dropped ({why})"
        say(f"read {table.path.name}{files}: {kept}")
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
    scaler = floored_scaler(train_rows, np.concatenate([train_rows, *split.val, *split.cal]))
    spc = fit_imr(train_rows, nsigmas=3.0, sigma="larger")
    drift = drift_of(tables, columns, options.relative)
    for line in drift.lines():
        say(line)
    # A drifting channel leaves fixed limits in normal operation by definition; its chart says
    # so (SPC events), but that is no reason to refuse the bundle, whose VAE models it relative
    # (its moving-range and flatline rules still count).
    drifting_mask = np.array([c in drift.drifting for c in columns], dtype=bool)
    trace = spc_trace(spc, [*split.val, *split.cal], ignore=drifting_mask)
    spc_warning = check_spc_alarm_share(
        trace, columns, options.max_spc_alarm_share, options.allow_spc_alarms
    )
    if spc_warning:
        say(spc_warning)
    windows = {
        part: make_windows(getattr(split, part), scaler, options.window, options.hop)
        for part in ("train", "val", "cal")
    }
    say(
        f"{len(columns)} channels; windows of {options.window} (hop {options.hop}): "
        f"train {len(windows['train'])}, val {len(windows['val'])}, cal {len(windows['cal'])}"
    )
    constant = [c for c, sd in zip(columns, np.std(train_rows, axis=0), strict=True) if sd == 0]
    if constant:
        # Only with --columns or --keep-all-columns (the selection leaves it out otherwise): a
        # setpoint that never moved in training is modelled as constant, so any later movement
        # of it scores high.
        say(
            f"warning: constant in the training rows (any change will score high): "
            f"{', '.join(constant)}"
        )
    missing_units = [c for c in columns if c not in units]
    if options.tag_map is not None and missing_units:
        say(f"tag map has no unit for: {', '.join(missing_units)}")

    # torch is imported only now, so a bad CSV or option is reported without waiting for it.
    from export.onnx_export import channel_baseline, export_onnx, prepare
    from export.train import TrainConfig, train_vae

    config = TrainConfig(
        epochs=options.epochs,
        seed=options.seed,
        encoder=options.encoder,
        beta=options.beta,
        adversarial=ADVERSARIAL_WEIGHT if options.model == "vae-gan" else 0.0,
    )
    relative = relative_mask(columns, drift.drifting)
    seconds, seconds_from = row_seconds(options.inputs)
    bar = ProgressBar(sys.stderr, config.epochs) if wants_bar(sys.stderr, options.quiet) else None
    try:
        result = train_vae(
            prepare(windows["train"], relative),
            prepare(windows["val"], relative),
            config,
            log=None if bar is not None else say,
            progress=bar.update if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    baseline = channel_baseline(result.model, windows["val"], relative)
    score = options.score
    score_choice = None
    if score is None:
        from export.score_choice import choose_score

        score_choice = choose_score(
            result.model,
            windows["train"],
            np.concatenate([windows["val"], windows["cal"]]),
            baseline,
            relative,
            (options.false_alarms_per_hour, seconds),
        )
        score = score_choice.score
        say(score_choice.line())
    reduce, with_latent = split_score(score)
    latent = None
    if with_latent:
        from export.onnx_export import fit_latent

        latent = fit_latent(
            result.model,
            windows["train"],
            np.concatenate([windows["val"], windows["cal"]]),
            baseline,
            relative,
            reduce,
        )

    with bundle_io.staging_dir(options.out) as staging:
        fp32_path = staging / bundle_io.FP32_NAME
        int8_path = staging / bundle_io.INT8_NAME
        export_onnx(result.model, fp32_path, baseline, relative, reduce, latent)
        # The calibration set: every window held out of the weights (validation, which only
        # picked the epoch, and calibration). On a short history (SKAB trains on 400 rows)
        # the calibration part alone is a few dozen windows.
        held_out = np.concatenate([windows["val"], windows["cal"]])
        cal_fp32, _ = score_onnx(fp32_path, held_out)
        # The threshold is set on the statistic the monitor compares with it: the EWMA of the
        # scores when smoothing is on (each held-out part smoothed on its own).
        n_val = len(windows["val"])
        alpha = options.smoothing
        thresholded = smoothed_parts([cal_fp32[:n_val], cal_fp32[n_val:]], alpha)
        threshold, method, threshold_record = vae_threshold(
            thresholded,
            options.false_alarms_per_hour,
            seconds,
            options.threshold_quantile,
            options.threshold_margin,
        )
        say(f"threshold {threshold:.4g}: {method} ({seconds:g} s per row: {seconds_from})")
        auto, fusion_basis = fusion_for(trace, options.window)
        fusion = auto if options.fusion == AUTO_FUSION else options.fusion
        fusion_basis = {**fusion_basis, "auto_choice": auto, "chosen_by": options.fusion}
        say(f"fusion {fusion} (SPC alarm on held-out normal rows: {fusion_basis})")
        drifting = [c for c, r in zip(columns, relative, strict=True) if r]
        shift = shift_for_bundle(
            [t.segments for t in tables],
            columns,
            drifting,
            fusion,
            options.shift_margin,
            budget=None if options.shift_margin else (options.false_alarms_per_hour, seconds),
        )
        parity, quantization = quantize_best(
            fp32_path,
            int8_path,
            windows["train"],
            held_out,
            cal_fp32,
            threshold,
            options.max_int8_flip_fraction,
            options.max_int8_divergence,
        )
        say(f"exported {fp32_path.name} and {int8_path.name} ({quantization['method']})")
        write_parity(staging / bundle_io.PARITY_NAME, parity, quantization)
        warning = parity_warning(parity, options.allow_parity_loss)
        if warning:
            say(warning)
        models = bundle_io.shipped_models(staging, parity.passed or options.allow_parity_loss)
        golden = write_golden(staging, windows["cal"], models)

        manifest = Manifest(
            model_version=options.model_version,
            label=options.label or f"{options.inputs[0].stem} v{options.model_version}",
            created_at=bundle_io.created_now(),
            min_agent_version=bundle_io.MIN_AGENT_VERSION,
            channels=[Channel(name=c, unit=units.get(c, "")) for c in columns],
            window=options.window,
            hop=options.hop,
            scaler=scaler.to_dict(),
            spc=bundle_io.spc_entry(spc),
            model=options.model,
            threshold=threshold,
            threshold_method=(
                method + (f" (scores smoothed, EWMA weight {alpha:g})" if alpha < 1.0 else "")
            ),
            smoothing=alpha,
            fusion=fusion,
            fusion_basis=fusion_basis,
            shift=shift[0] if shift is not None else None,
            shift_fit=shift[1] if shift is not None else None,
            scoring={
                "score": f"{reduce} over channels of the per-channel reconstruction "
                "error / its mean on held-out normal windows"
                + (
                    ", / its held-out mean, + the latent distance / its held-out mean"
                    if latent is not None
                    else ""
                ),
                "score_reduce": score,
                **({"latent_term": latent.to_manifest()} if latent is not None else {}),
                "encoder": options.encoder,
                "channel_baseline": [float(b) for b in baseline],
                "relative_channels": [c for c, r in zip(columns, relative, strict=True) if r],
                "beta": config.beta,
                "latent": config.latent,
                "hidden": config.hidden,
                "threshold_rule": threshold_record,
            },
            models=models,
            files=bundle_io.file_entries(staging, golden, models),
            golden=golden,
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
                # what the model was not given, and why (export/selection.py)
                "columns_left_out": selection.record(),
                "drift": drift.record(),
                **({"score_choice": score_choice.record()} if score_choice else {}),
                # for the explainer: which tags usually move together (issue 8)
                "correlation": training_correlation(train_rows),
            },
        )
        written = bundle_io.write_manifest(staging, manifest)
        published = bundle_io.publish(staging, options.out, options.force)
    return TrainOutcome(
        bundle=published,
        manifest=written,
        parity=parity,
        summary=bundle_io.summary(published, parity, rows),
    )
