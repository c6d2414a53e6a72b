"""`lineside score`: replay a CSV through a bundle, one scored row per input row (see
agent.pipeline.replay for the columns)."""

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
    header += [f"contrib:{c}" for c in replay.channels]
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
        write_replay(replay, Path(args.output) if args.output else None)
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
    p.add_argument("--output", help="CSV to write (default: stdout)")
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
