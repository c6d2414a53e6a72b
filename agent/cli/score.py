"""`lineside score`: replay a CSV through a bundle, one scored row per input row (see
agent.pipeline.replay for the columns); `--report FILE` adds the HTML report
(agent.cli.score_report)."""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from agent.config import DetectionConfig
from agent.errors import LinesideError
from agent.pipeline.events.fusion import FUSIONS
from agent.pipeline.replay import DEFAULT_DETECTION, Replay, replay_csv


def _cell(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"


def write_replay(replay: Replay, out: Path | None) -> None:
    """Write the per-row CSV (comma-separated) to `out`, or stdout when None."""
    header = ["row", "time", "score", "vae_alarm", "spc_alarm", "anomaly"]
    header += ["threshold", "shift_score", "shift_threshold", "shift_alarm"]
    header += [f"contrib:{c}" for c in replay.channels]
    nan = [math.nan] * len(replay.lines)
    threshold = replay.threshold if replay.threshold is not None else nan
    shift = replay.shift_score if replay.shift_score is not None else nan
    shift_threshold = replay.shift_threshold if replay.shift_threshold is not None else nan
    shift_alarm = replay.shift_alarm if replay.shift_alarm is not None else [False] * len(nan)
    handle = out.open("w", encoding="utf-8", newline="") if out is not None else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow(header)
        anomaly = replay.anomaly
        for i, line in enumerate(replay.lines):
            writer.writerow(
                [
                    line,
                    replay.times[i],
                    _cell(replay.score[i]),
                    int(replay.vae_alarm[i]),
                    int(replay.spc_alarm[i]),
                    int(anomaly[i]),
                    _cell(threshold[i]),
                    _cell(shift[i]),
                    _cell(shift_threshold[i]),
                    int(shift_alarm[i]),
                    *(_cell(v) for v in replay.contrib[i]),
                ]
            )
    finally:
        if out is not None:
            handle.close()


def cmd_score(args: argparse.Namespace) -> int:
    """Run `lineside score`; exit 2 on a bad bundle or CSV, naming what is wrong."""
    detection = DetectionConfig(  # the SPC settings: the site config's defaults
        raise_after=args.raise_after,
        clear_after=args.clear_after,
        clear_ratio=args.clear_ratio,
        precision=args.precision,
        fusion=args.fusion,
        smoothing=args.smoothing,
    )
    if args.smoothing is not None and not 0.0 < args.smoothing <= 1.0:
        print("lineside score: --smoothing must be in (0, 1] (1 = none)", file=sys.stderr)
        return 2
    try:
        replay = replay_csv(Path(args.bundle), Path(args.input), detection)
        if args.report:
            from agent.bundles.bundle import load_bundle
            from agent.cli.score_report import write_report

            bundle = load_bundle(Path(args.bundle))
            catalogue = None
            if args.catalogue:
                from agent.config.catalogue import load_catalogue

                catalogue = load_catalogue(Path(args.catalogue), set(replay.channels))
            shown = write_report(replay, bundle, Path(args.input), Path(args.report), catalogue)
            print(f"{len(shown)} alarm(s); wrote {args.report}", file=sys.stderr)
        if args.output or not args.report:
            write_replay(replay, Path(args.output) if args.output else None)
    except OSError as exc:
        print(f"lineside score: cannot write: {exc}", file=sys.stderr)
        return 2
    except LinesideError as exc:
        print(f"lineside score: {exc}", file=sys.stderr)
        return 2
    if args.output:
        rows, alarms = len(replay.lines), int(replay.anomaly.sum())
        print(f"scored {rows} rows, anomaly on {alarms}; wrote {args.output}", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `lineside score` on the CLI's subparsers."""
    d = DEFAULT_DETECTION
    p = sub.add_parser("score", help="replay a CSV through a bundle: one scored row per input row")
    p.add_argument("--bundle", required=True, help="model bundle directory")
    p.add_argument("--input", required=True, help="CSV with the bundle's channels (; or ,)")
    p.add_argument("--output", help="CSV to write (default: stdout, unless --report)")
    p.add_argument("--report", help="also write a self-contained HTML report to this file")
    p.add_argument(
        "--catalogue", help="failure-mode catalogue (TOML) the report's explanations cite"
    )
    p.add_argument("--precision", choices=["int8", "fp32"], default=d.precision)
    p.add_argument(
        "--raise-after", type=int, default=d.raise_after, help=f"debounce ({d.raise_after})"
    )
    p.add_argument(
        "--clear-after", type=int, default=d.clear_after, help=f"clear after ({d.clear_after})"
    )
    p.add_argument(
        "--clear-ratio", type=float, default=d.clear_ratio, help=f"hysteresis ({d.clear_ratio})"
    )
    p.add_argument(
        "--fusion", choices=FUSIONS, help="how VAE and SPC alarms fuse (default: the bundle's)"
    )
    p.add_argument(
        "--smoothing", type=float, help="EWMA weight of the newest score (default: the bundle's)"
    )
    p.set_defaults(func=cmd_score)
