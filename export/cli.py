"""`lineside-export`: the workstation command line (subcommand `train`).

Exit status: 0 on success, 2 on an ExportError (a one-line `lineside-export: error: ...` on
stderr, no traceback) or a usage error (argparse's own message). Heavy imports (torch, onnx)
happen only once a subcommand runs, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.bundles.manifest import FUSIONS
from export.budget import FALSE_ALARMS_PER_HOUR
from export.calibrate import AUTO_FUSION, DEFAULT_FUSION, MAX_SPC_ALARM_SHARE
from export.defaults import (
    DEFAULT_BETA,
    DEFAULT_WINDOW,
    MAX_FLIP_FRACTION,
    MAX_NEAR_THRESHOLD_DIFF,
)
from export.errors import ExportError
from export.shift_fit import MARGIN as SHIFT_MARGIN

PROG = "lineside-export"


def _columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of column names")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train and package Lineside model bundles on a workstation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = sub.add_parser(
        "train",
        help="train a VAE on historian CSVs and write a model bundle",
        description=(
            "Train a VAE anomaly detector on normal-operation CSVs and write a bundle "
            "(manifest.json, vae.onnx, vae.int8.onnx, parity.json) into --out. Each file is "
            "split 70/15/15 into train, validation (early stopping) and calibration "
            "(threshold, int8 parity)."
        ),
    )
    train.add_argument(
        "--input",
        "--data",
        dest="inputs",
        action="append",
        required=True,
        type=Path,
        metavar="CSV|DIR",
        help="a CSV of normal operation, oldest row first, or a directory of `lineside record` "
        "files (read in time order as one input); repeat for more",
    )
    train.add_argument("--out", required=True, type=Path, metavar="DIR", help="bundle directory")
    train.add_argument(
        "--columns",
        type=_columns,
        metavar="A,B,C",
        help="feature columns, modelled whatever they look like (default: every process column: "
        "constant, binary, setpoint-like and counter columns are left out, each said why)",
    )
    train.add_argument(
        "--keep-all-columns",
        action="store_true",
        help="model every column the tag map allows, constant, binary, setpoint-like or not",
    )
    train.add_argument(
        "--relative",
        type=_columns,
        metavar="A,B",
        help="columns modelled without their level (each window minus its mean), or none "
        "(default: the channels a linear trend explains half the variance of, found on the "
        "data and printed: export/drift.py)",
    )
    train.add_argument(
        "--score",
        choices=["max", "mean", "max+latent", "mean+latent"],
        default=None,
        help="window score: the largest channel contribution, or their mean; +latent adds "
        "the encoder's distance from the training windows (export/latent.py) (default: the "
        "one that catches the most synthetic one-channel steps at the false-alarm budget on "
        "the held-out windows, printed: export/score_choice.py)",
    )
    train.add_argument(
        "--encoder",
        choices=["dense", "conv"],
        default="dense",
        help="VAE encoder: dense over the flattened window, or 1-D conv over time (dense)",
    )
    train.add_argument(
        "--beta",
        type=float,
        default=DEFAULT_BETA,
        help=f"weight of the KL term in the loss ({DEFAULT_BETA:g})",
    )
    train.add_argument(
        "--window", type=int, default=DEFAULT_WINDOW, help=f"samples per window ({DEFAULT_WINDOW})"
    )
    train.add_argument("--hop", type=int, default=1, help="samples between windows (1)")
    train.add_argument("--epochs", type=int, default=60, help="maximum epochs (60)")
    train.add_argument("--seed", type=int, default=0, help="random seed (0)")
    train.add_argument(
        "--model",
        choices=["vae", "vae-gan"],
        default="vae",
        help="vae, or vae-gan (adversarial term on the decoder) (vae)",
    )
    train.add_argument(
        "--tag-map",
        type=Path,
        metavar="TOML",
        help="a PLC tag map (firmware-configs/plc/*.toml): the channel units; its tags with "
        "detect = false or a role other than process are left out",
    )
    train.add_argument("--model-version", type=int, default=1, help="monotonic integer (1)")
    train.add_argument("--label", default="", help="a name for humans")
    train.add_argument(
        "--false-alarms-per-hour",
        type=float,
        default=FALSE_ALARMS_PER_HOUR,
        metavar="RATE",
        help="the false-alarm budget the VAE and shift thresholds are set to, per hour of "
        f"normal operation, extrapolated from the held-out rows ({FALSE_ALARMS_PER_HOUR:g}: "
        "one per 8 h; export/budget.py)",
    )
    train.add_argument(
        "--threshold-quantile",
        type=float,
        default=None,
        help="instead of the budget: the threshold is this quantile of the held-out scores "
        "x --threshold-margin (0.999 x 1.25, the older rule)",
    )
    train.add_argument(
        "--threshold-margin",
        type=float,
        default=None,
        help="factor on that quantile (1.25); implies the quantile rule",
    )
    train.add_argument(
        "--smoothing",
        type=float,
        default=1.0,
        help="EWMA weight of the newest score, the threshold calibrated on it (1 = none)",
    )
    train.add_argument(
        "--fusion",
        choices=[*FUSIONS, AUTO_FUSION],
        default=DEFAULT_FUSION,
        help=f"how the VAE, shift and SPC alarms fuse ({DEFAULT_FUSION}; {AUTO_FUSION}: VAE "
        "and SPC chosen on held-out normal rows)",
    )
    train.add_argument(
        "--shift-margin",
        type=float,
        default=None,
        help="instead of the budget: the shift detector's threshold is the largest held-out "
        f"normal score x this (e.g. {SHIFT_MARGIN:g}, the older rule)",
    )
    train.add_argument(
        "--max-spc-alarm-share",
        type=float,
        default=MAX_SPC_ALARM_SHARE,
        metavar="SHARE",
        help="refuse a bundle whose SPC alarm holds on more than this share of held-out normal "
        f"rows, naming the channels to blame ({MAX_SPC_ALARM_SHARE:g})",
    )
    train.add_argument(
        "--allow-spc-alarms",
        action="store_true",
        help="export even if the SPC alarm holds on more than --max-spc-alarm-share (warned)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress on stderr")
    train.add_argument("--force", action="store_true", help="replace a non-empty --out")
    train.add_argument(
        "--allow-parity-loss",
        action="store_true",
        help="ship int8 even if it fails the parity gate (by default fp32 ships alone then)",
    )
    train.add_argument(
        "--max-int8-flips",
        type=float,
        default=MAX_FLIP_FRACTION,
        metavar="SHARE",
        help="the int8 gate: at most this share of checked windows may change their decision "
        f"({MAX_FLIP_FRACTION:g})",
    )
    train.add_argument(
        "--max-int8-divergence",
        type=float,
        default=MAX_NEAR_THRESHOLD_DIFF,
        metavar="SHARE",
        help="the int8 gate: near the threshold, int8 may be off by this share of it "
        f"({MAX_NEAR_THRESHOLD_DIFF:g})",
    )
    train.set_defaults(handler=_cmd_train)
    from export.sign_cli import add_signing_parsers

    add_signing_parsers(sub)
    from export.llm_cli import add_llm_parsers  # issue 8: llm and distil subcommands

    add_llm_parsers(sub)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    """Run `train` with parsed arguments; print the bundle summary to stdout."""
    from export.pipeline import TrainOptions, run_train  # torch comes later, once data is read

    options = TrainOptions(
        inputs=list(args.inputs),
        out=args.out,
        columns=args.columns,
        window=args.window,
        hop=args.hop,
        epochs=args.epochs,
        seed=args.seed,
        model=args.model,
        relative=args.relative,
        score=args.score,
        encoder=args.encoder,
        beta=args.beta,
        tag_map=args.tag_map,
        model_version=args.model_version,
        label=args.label,
        false_alarms_per_hour=args.false_alarms_per_hour,
        threshold_quantile=args.threshold_quantile,
        threshold_margin=args.threshold_margin,
        smoothing=args.smoothing,
        fusion=args.fusion,
        shift_margin=args.shift_margin,
        quiet=args.quiet,
        force=args.force,
        allow_parity_loss=args.allow_parity_loss,
        max_int8_flip_fraction=args.max_int8_flips,
        max_int8_divergence=args.max_int8_divergence,
        keep_all_columns=args.keep_all_columns,
        max_spc_alarm_share=args.max_spc_alarm_share,
        allow_spc_alarms=args.allow_spc_alarms,
    )
    outcome = run_train(options)
    print(outcome.summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `lineside-export`; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except ExportError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    return status
