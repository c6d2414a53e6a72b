"""SKAB, as its protocol says: per labelled file, train on the first 400 rows, score the rest.

    python benchmarks/skab.py --data ../shared/datasets/skab

For each of the 34 labelled files the first 400 rows are written to a training CSV and given to
`lineside-export train` (the same `run_train` call the command makes); the whole file is then
replayed through `lineside score`'s code (`agent.pipeline.replay.replay_rows`: the live
LineMonitor with the bundle's VAE in onnxruntime, the shift detector, SPC and the debounced
alarms). Only rows
from 400 on are scored; the first 400 just fill the window, as a live stream would. One
confusion matrix is summed over all files (export.evaluation), and NAB changepoint scores are
computed from the same binary predictions. The table puts our rows beside the published
leaderboard.

With no option, every export setting is the export's own default (`lineside-export train
--input X --out Y`: drifting channels, score and thresholds found on the 400 normal rows) and
the first row, "no flags", replays it with the site defaults of `[detection]`; docs/skab.md
leads with it. The options below (`--window`, `--relative`, `--score`, `--beta`,
`--shift-margin`) reproduce the earlier, SKAB-chosen settings; what follows describes them.

What was chosen, and how (printed with the tables under "What chose what"):
- window 16, dense encoder, `--score mean`, `--beta 0.1`, `--relative Temperature,Thermocouple`
  (the rig's water warms through every experiment), 60 epochs: the first round, compared on the
  aggregate of all 34 files (test labels, in aggregate); not re-chosen here;
- `--score mean+latent` (the default; `--score mean` is the old one): the mean reconstruction
  score plus the distance of the window's posterior mean from the training windows' ones
  (export/latent.py), each in held-out units, weight 1. Chosen on valve2 + other only, by F1
  averaged over training seeds 0-4 (0.789 -> 0.815 there, FAR 26.1 -> 17.3 %) among weights
  0-3, reductions mean/max/rms, per-channel units and margins; valve1 held out moved from
  0.782 to 0.789 F1 and 5.3 -> 2.1 % FAR on the same seed average. Seed 0, the benchmark's,
  gains more than the average (0.788 -> 0.819 F1 on all 34 files; seeds 1-4: 0.783-0.786 ->
  0.794-0.806);
- threshold: the bundle's own, quantile 0.999 of the ~90 held-out normal windows of the 400
  training rows (of their EWMA when smoothing is on), x 1.25; quantile, not POT: ~90 scores
  leave a handful of exceedances, too few to fit a tail;
- fusion `auto`: the export's rule per file, from the SPC alarm on the held-out normal rows
  only (agent.pipeline.events.fusion.choose_fusion); every mode with SPC, `auto` included,
  raised the
  FAR on the selection folders;
- the shift detector (agent.pipeline.detectors.shift, fitted by export/shift_fit.py) and its fusions
  `shift`, `vae-or-shift`, `vae-plus-shift`: its parameters (fast 0.2, slow 0.005, margin
  1.25) and the vae-plus-shift weight (0.3) were chosen on valve2 + other only; the export's
  default `vae-plus-shift` because it won there (it still has the best F1 there, but no longer
  a FAR under the cap);
- score smoothing (`--smoothing` candidates), `clear_after` (`--clear-after` candidates) and a
  fusion override: chosen on the labels of valve2 + other only (benchmarks/skab_select.py:
  best F1 with FAR <= 15 % there); valve1 is held out and reported on its own and in the total.
  The headline row is the `anomaly` column (the live `alarm_active`) of the int8 model.

Measured, one run each (seed 0, the defaults): the rule picks fusion `shift` (no candidate
under the FAR cap on the selection folders, so the lowest FAR): int8 `anomaly` F1 0.860, FAR
8.27 %, MAR 19.25 %, NAB 38.13 standard; the export's default `vae-plus-shift` (the VAE in the
decision) 0.859 / 8.36 / 19.34, NAB 36.87, fp32 the same, VAE-GAN 0.858 / 8.40 / 19.45; valve1
held out 0.854 / 0.86 / 24.90. Seeds 1-4 (`--seed N --smoothing 1 --clear-after 3 --vae-only`),
`vae-plus-shift`: MAR 19.27-19.68 %, FAR 8.12-8.42 %, F1 0.857-0.859; the rule's own pick
varies with the seed (seed 4: `vae` alone, 0.798 / 8.21 / 28.93). Leave-one-folder-out (printed
after the selection table) pools 0.835 / 17.97 / 17.16: chosen on the valve folders alone,
`other` gets a too sensitive setting (FAR 42 % there). Before the shift and summed alarms
honoured the site's `clear_ratio` (0.8; they cleared at 1.0): 0.859 / 6.66 / 20.40.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.bundles.bundle import load_bundle  # noqa: E402
from agent.config import DetectionConfig  # noqa: E402
from agent.core.tabular import read_csv  # noqa: E402
from agent.pipeline.events.fusion import FUSIONS, SHIFT_FUSIONS  # noqa: E402
from agent.pipeline.replay import DEFAULT_DETECTION, read_times, replay_results, seconds  # noqa: E402
from benchmarks.skab_select import (  # noqa: E402
    HELD_OUT_FOLDERS,
    Alarms,
    BoolArray,
    Candidate,
    FileTruth,
    Row,
    Scored,
    choose,
    fused,
    leave_one_folder_out,
    print_folds,
    print_selection,
    print_tables,
)
from benchmarks.skab_select import evaluate as select_eval  # noqa: E402
from export.calibrate import DEFAULT_FUSION  # noqa: E402
from export.evaluation import Evaluation  # noqa: E402
from export.shift_fit import MARGIN as SHIFT_MARGIN  # noqa: E402

TRAIN_ROWS = 400
FOLDERS = ("valve1", "valve2", "other")


def labelled_files(data: Path) -> list[Path]:
    """The 34 labelled SKAB files, in a fixed order."""
    files = sorted(
        (p for folder in FOLDERS for p in (data / folder).glob("*.csv")),
        key=lambda p: (p.parent.name, int(p.stem) if p.stem.isdigit() else 0, p.stem),
    )
    if not files:
        raise SystemExit(f"no SKAB files under {data} (expected {', '.join(FOLDERS)})")
    return files


def write_train_part(source: Path, target: Path) -> None:
    """The header and the first TRAIN_ROWS data lines of a CSV, byte for byte."""
    with source.open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(TRAIN_ROWS + 1)]
    target.write_text("".join(lines), encoding="utf-8")


def train_bundle(
    train_csv: Path, out: Path, args: argparse.Namespace, model: str, smoothing: float
) -> float:
    """Train one bundle with `lineside-export train`'s own code; return the seconds it took."""
    from export.pipeline import TrainOptions, run_train

    # Only the settings given on this command line are passed: with none, the export's own
    # defaults train the bundle, as `lineside-export train --input X --out Y` does.
    given = {
        "window": args.window,
        "relative": None if args.relative is None else _relative(args.relative),
        "score": args.score,
        "beta": args.beta,
        "shift_margin": args.shift_margin,
    }
    options = TrainOptions(
        inputs=[train_csv],
        out=out,
        epochs=args.epochs,
        seed=args.seed,
        model=model,
        encoder=args.encoder,
        smoothing=smoothing,
        quiet=True,
        force=True,
        # 280 train rows leave SPC limits that alarm on 17 % of held-out normal rows (median
        # over the files), which the export refuses by default; the SPC alarm is not in the
        # default decision (vae-plus-shift), and SPC alone is measured below
        allow_spc_alarms=True,
        **{k: v for k, v in given.items() if v is not None},  # type: ignore[arg-type]
    )
    started = time.perf_counter()
    run_train(options)
    return time.perf_counter() - started


def _relative(text: str) -> list[str]:
    names = [c for c in text.split(",") if c]
    return names or ["none"]


def _model_size(bundle_dir: Path, precision: str) -> int:
    bundle = load_bundle(bundle_dir)
    if precision not in bundle.manifest.models:
        precision = "fp32"  # int8 refused by the parity gate: fp32 shipped alone
    return int(bundle.model_path(precision).stat().st_size)


def truths(args: argparse.Namespace) -> list[FileTruth]:
    """Every labelled file's test part, its training part written under --work."""
    (args.work / "train").mkdir(parents=True, exist_ok=True)
    out = []
    for path in labelled_files(args.data):
        name = f"{path.parent.name}-{path.stem}"
        write_train_part(path, args.work / "train" / f"{name}.csv")
        table = read_csv(path)
        out.append(
            FileTruth(
                name=name,
                folder=path.parent.name,
                times=seconds(read_times(path))[TRAIN_ROWS:],
                anomaly=table.labels["anomaly"][TRAIN_ROWS:],
                changepoint=table.labels["changepoint"][TRAIN_ROWS:],
            )
        )
    return out


def bundles(
    args: argparse.Namespace, files: list[FileTruth], model: str, smoothing: float
) -> dict[str, tuple[Path, float]]:
    """Train (or reuse) one bundle per file; name -> (bundle dir, training seconds)."""
    out = {}
    for n, t in enumerate(files, 1):
        target = args.work / f"{model}-s{smoothing:g}" / t.name
        cached = args.reuse and (target / "manifest.json").is_file()
        train_csv = args.work / "train" / f"{t.name}.csv"
        took = 0.0 if cached else train_bundle(train_csv, target, args, model, smoothing)
        out[t.name] = (target, took)
        print(f"  [{n:2d}/{len(files)}] {model} smoothing {smoothing:g}: {t.name}", file=sys.stderr)
    return out


def replay(
    args: argparse.Namespace, t: FileTruth, bundle_dir: Path, detection: DetectionConfig
) -> tuple[Alarms, BoolArray]:
    """Replay one whole file through the live monitor; the test rows' alarms and decision."""
    bundle = load_bundle(bundle_dir)
    path = args.data / t.folder / f"{t.name.split('-', 1)[1]}.csv"
    values = read_csv(path, bundle.manifest.channel_names).values
    # Rows before the first full window have no VAE score: the fusion keeps 0 for them.
    rows = list(replay_results(bundle, values, detection))
    ratio = [r.score.ratio if r.score else np.nan for r in rows]
    shift = [r.shift_score.ratio if r.shift_score else 0 for r in rows]
    rows, has_shift = rows[TRAIN_ROWS:], bundle.manifest.shift is not None  # ratios: all rows
    alarms = Alarms(
        vae=np.array([r.anomaly_active for r in rows], dtype=bool),
        spc=np.array([r.spc_alarm_active for r in rows], dtype=bool),
        fusion=_auto_choice(bundle_dir),
        window=bundle.manifest.window,
        shift=np.array([r.shift_alarm_active for r in rows], dtype=bool) if has_shift else None,
        vae_ratio=np.array(ratio, dtype=np.float64) if has_shift else None,
        shift_ratio=np.array(shift, dtype=np.float64) if has_shift else None,
        raise_after=detection.raise_after,
        clear_after=detection.clear_after,
        clear_ratio=detection.clear_ratio,
        offset=TRAIN_ROWS,
    )
    return alarms, np.array([r.alarm_active for r in rows], dtype=bool)


def _auto_choice(bundle_dir: Path) -> str:
    """What `--fusion auto` chose for this bundle (recorded by the export whatever it used)."""
    raw = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    return str(raw["detector"]["fusion_basis"]["auto_choice"])


def _detection(
    precision: str, clear_after: int, fusion: str | None, raise_after: int
) -> DetectionConfig:
    """The live defaults with the benchmark's precision, debounce and fusion."""
    return replace(
        DEFAULT_DETECTION,
        precision=precision,
        raise_after=raise_after,
        clear_after=clear_after,
        fusion=fusion,
    )


def evaluate(args: argparse.Namespace) -> tuple[list[Row], Evaluation, Candidate]:
    """Select the decision settings on valve2 + other, then score every row of the table."""
    files = truths(args)
    ones = Evaluation()
    for t in files:
        ones.add(t.times, t.anomaly, t.changepoint, np.ones_like(t.anomaly))
    trained = {a: bundles(args, files, "vae", a) for a in args.smoothing}
    scored: list[Scored] = []
    every: dict[Candidate, dict[str, BoolArray]] = {}
    for alpha in args.smoothing:
        for clear in args.clear_after:
            detection = _detection("int8", clear, None, args.raise_after)
            alarms = {
                t.name: replay(args, t, trained[alpha][t.name][0], detection)[0] for t in files
            }
            with_shift = all(a.shift is not None for a in alarms.values())
            for mode in ("auto", *(m for m in FUSIONS if with_shift or m not in SHIFT_FUSIONS)):
                cand = Candidate(alpha, clear, mode)
                preds = {t.name: fused(alarms[t.name], mode) for t in files}
                scored.append(select_eval(cand, files, preds))
                every[cand] = preds
            print(f"  replayed smoothing {alpha:g}, clear after {clear}", file=sys.stderr)
    chosen = choose(scored)
    print_selection(scored, chosen)
    print_folds(*leave_one_folder_out(files, every))
    c = chosen.candidate
    # The shipped default is passed as None, so the bundle's own field is what gets replayed.
    fusion = None if c.fusion == DEFAULT_FUSION else c.fusion
    names = {
        "no flags": "**no flags: `lineside-export train` and the site defaults, int8**",
        "int8 anomaly": f"int8 `anomaly` (the benchmark rule's pick: fusion {c.fusion})",
        "fp32 anomaly": f"fp32 `anomaly` (fusion {c.fusion})",
        "int8 vae": "VAE int8 alarm alone",
        "spc": "SPC alone",
        "or": "VAE int8 or SPC (vae-or-spc)",
        "gan": f"VAE-GAN int8 `anomaly` (fusion {c.fusion})",
        "shift": "shift detector alone (shift)",
        "vae-or-shift": "VAE int8 or shift (vae-or-shift)",
        "vae-plus-shift": "VAE int8 + shift score (vae-plus-shift)",
        # A chosen fusion without the VAE (shift) says nothing of int8 against fp32 or of the
        # VAE-GAN: those two rows are also given under the export's default fusion.
        "fp32 default": f"fp32 `anomaly` (fusion {DEFAULT_FUSION})",
        "gan default": f"VAE-GAN int8 `anomaly` (fusion {DEFAULT_FUSION})",
    }
    rows = {k: Row(v) for k, v in names.items()}
    gan = bundles(args, files, "vae-gan", c.smoothing) if not args.vae_only else {}
    if not gan:
        del rows["gan"], rows["gan default"]
    if c.fusion == DEFAULT_FUSION:
        del rows["fp32 default"]
        rows.pop("gan default", None)
    plain = trained.get(1.0)
    if plain is None:
        del rows["no flags"]
    for t in files:
        bundle_dir, took = trained[c.smoothing][t.name]
        preds: dict[str, tuple[BoolArray, Path, str, float]] = {}
        if plain is not None:  # the export's defaults (smoothing 1) under the site's defaults
            no_flags = replace(DEFAULT_DETECTION, precision="int8")
            plain_dir, plain_took = plain[t.name]
            preds["no flags"] = (
                replay(args, t, plain_dir, no_flags)[1],
                plain_dir,
                "int8",
                plain_took,
            )
        det = _detection("int8", c.clear_after, fusion, args.raise_after)
        alarms, anomaly = replay(args, t, bundle_dir, det)
        expected = fused(alarms, c.fusion)
        if c.fusion == "auto":  # the override takes one mode for every file: replay per file
            det = replace(det, fusion=alarms.fusion)
            alarms, anomaly = replay(args, t, bundle_dir, det)
        assert (anomaly == expected).all(), f"{t.name}: replay and selection disagree"
        preds["int8 anomaly"] = (anomaly, bundle_dir, "int8", took)
        preds["int8 vae"] = (alarms.vae, bundle_dir, "int8", took)
        preds["spc"] = (alarms.spc, bundle_dir, "", 0.0)
        preds["or"] = (alarms.vae | alarms.spc, bundle_dir, "int8", took)
        for mode in SHIFT_FUSIONS:
            if alarms.shift is not None:
                preds[mode] = (fused(alarms, mode), bundle_dir, "int8", took)
        det32 = _detection("fp32", c.clear_after, fusion, args.raise_after)
        preds["fp32 anomaly"] = (replay(args, t, bundle_dir, det32)[1], bundle_dir, "fp32", took)
        if "fp32 default" in rows:
            det32 = replace(det32, fusion=None)
            pred32 = replay(args, t, bundle_dir, det32)[1]
            preds["fp32 default"] = (pred32, bundle_dir, "fp32", took)
        if gan:
            gan_dir, gan_took = gan[t.name]
            preds["gan"] = (replay(args, t, gan_dir, det)[1], gan_dir, "int8", gan_took)
            if "gan default" in rows:
                pred_gan = replay(args, t, gan_dir, replace(det, fusion=None))[1]
                preds["gan default"] = (pred_gan, gan_dir, "int8", gan_took)
        for key, (pred, where, precision, seconds_) in preds.items():
            row = rows[key]
            row.evaluation.add(t.times, t.anomaly, t.changepoint, pred.astype(float))
            part = row.held_out if t.folder in HELD_OUT_FOLDERS else row.select
            part.add(t.times, t.anomaly, t.changepoint, pred.astype(float))
            if precision:
                row.train_s.append(seconds_)
                row.size_bytes.append(_model_size(where, precision))
    return [r for r in rows.values() if r.evaluation.matrix.tp + r.evaluation.matrix.fn], ones, c


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> int:
    """Run the benchmark and print the tables; a JSON summary goes to --json if given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "skab")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "lineside-skab",
        help="where the training parts and bundles go (outside the repo)",
    )
    # None: the export's default (export/defaults.py, found on the data for --relative)
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument(
        "--relative",
        default=None,
        help="channels trained without their level ('' for none; default: found on the data, "
        "export/drift.py); the published figures used Temperature,Thermocouple",
    )
    parser.add_argument(
        "--score", choices=["max", "mean", "max+latent", "mean+latent"], default=None
    )
    parser.add_argument("--encoder", choices=["dense", "conv"], default="dense")
    parser.add_argument("--beta", type=float, default=None, help="KL weight")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raise-after", type=int, default=3)
    parser.add_argument(
        "--shift-margin",
        type=float,
        default=None,
        help=f"the older shift threshold rule (e.g. {SHIFT_MARGIN:g}); default: the budget",
    )
    parser.add_argument(
        "--clear-after", type=_ints, default=[3, 10, 30], help="candidates (3,10,30)"
    )
    parser.add_argument(
        "--smoothing", type=_floats, default=[1.0, 0.3, 0.1], help="EWMA candidates (1,0.3,0.1)"
    )
    parser.add_argument("--reuse", action="store_true", help="reuse bundles already in --work")
    parser.add_argument("--vae-only", action="store_true", help="skip the VAE-GAN variant")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    rows, ones, chosen = evaluate(args)
    print_tables(rows, ones, chosen, args.score or "chosen per file")
    if args.json:
        payload = {
            r.name: {
                "f1": r.evaluation.matrix.f1,
                "far": r.evaluation.matrix.far,
                "mar": r.evaluation.matrix.mar,
                "held_out_f1": r.held_out.matrix.f1,
                "nab": {k: v.score for k, v in r.evaluation.nab().items()},
            }
            for r in rows
        }
        payload["chosen"] = {"label": chosen.label()}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
