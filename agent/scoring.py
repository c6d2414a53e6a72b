"""`lineside score`: replay a CSV through exactly the detection objects of the live agent.

Every input row becomes one `Sample` fed to the `LineMonitor` that `agent.app.build_monitor`
builds for the bundle (window, VAE in onnxruntime, SPC charts, debounced alarms), so what is
measured offline is what runs on the line. One output row per input row:

    row           the line number of the row in the input file (the header is row 1)
    time          the input's timestamp/datetime cell, when it has one
    score         the VAE score of the window ending at this row (its EWMA when the bundle
                  or `--smoothing` sets one: that is what meets the threshold); empty until
                  the first window is full and on a row with an empty/NaN cell (the window
                  restarts)
    vae_alarm     the VAE's debounced alarm (raise after `raise_after` scores above the
                  threshold, clear after `clear_after` below `clear_ratio` x threshold)
    spc_alarm     the SPC alarm (one channel breaking a rule in `spc_hits` of `spc_span` rows)
    anomaly       the fused decision of the line, the live `LineResult.alarm_active`: the
                  two alarms fused as the bundle's `detector.fusion` says (or `--fusion`):
                  `vae`, `vae-or-spc`, `vae-or-sustained-spc`, or with the bundle's
                  drift-tolerant shift detector `shift`, `vae-or-shift`, `vae-plus-shift`
                  (the export's default; agent.detectors.fusion)
    contrib:TAG   each channel's share of the score (empty when `score` is)

A timestamp column is never a feature; `;` and `,` separators are both read (agent.tabular).
A cell that is empty or NaN makes that tag's reading bad for the row, as a failed PLC read
would: SPC skips it and the VAE window starts over.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.config import DetectionConfig, OpcUaConfig, SiteConfig
from agent.detectors.fusion import FUSIONS
from agent.errors import DataError, LinesideError
from agent.monitor import LineResult
from agent.ops.bundles import Bundle, load_bundle
from agent.tabular import TIME_COLUMNS, detect_separator, read_csv
from agent.types import Quality, Sample, TagReading

FloatArray = npt.NDArray[np.float64]
SOURCE = "replay"

#: The site config's defaults for `[detection]` (agent/config/site.py), used unless overridden.
DEFAULT_DETECTION = DetectionConfig(
    raise_after=3,
    clear_after=10,
    clear_ratio=0.8,
    spc_hits=3,
    spc_span=5,
    flatline_samples=15,
    precision="int8",
)


@dataclass(frozen=True)
class Replay:
    """The outcome of replaying one table: per-row arrays, NaN score where there was none."""

    channels: list[str]
    score: FloatArray
    vae_alarm: npt.NDArray[np.bool_]
    spc_alarm: npt.NDArray[np.bool_]
    contrib: FloatArray  # (rows, channels)
    lines: list[int]
    times: list[str]
    anomaly: npt.NDArray[np.bool_]  # the fused decision, `LineResult.alarm_active`


def replay_config(bundle: Path, detection: DetectionConfig = DEFAULT_DETECTION) -> SiteConfig:
    """A site config with no PLC: the detection settings and the bundle, nothing to poll."""
    return SiteConfig(
        path=Path("<replay>"),
        line=SOURCE,
        bundle=bundle,
        detection=detection,
        opcua=OpcUaConfig(endpoint="", namespace="", security="none", allow_anonymous=True),
        journal_path=Path("<none>"),
        plcs=(),
    )


def read_times(path: Path) -> list[str]:
    """The timestamp cell of every data row ('' for all when the file has no time column)."""
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        header_line = f.readline()
        f.seek(0)
        reader = csv.reader(f, delimiter=detect_separator(header_line))
        header = [h.strip().lower() for h in next(reader)]
        index = next((i for i, h in enumerate(header) if h in TIME_COLUMNS), None)
        rows = (cells for cells in reader if cells and any(c.strip() for c in cells))
        return [cells[index].strip() if index is not None else "" for cells in rows]


def seconds(times: list[str]) -> FloatArray:
    """ISO timestamps as seconds since the first row; the row number when they do not parse."""
    try:
        stamps = [datetime.fromisoformat(t).timestamp() for t in times]
    except ValueError:
        return np.arange(len(times), dtype=np.float64)
    return np.asarray(stamps, dtype=np.float64) - (stamps[0] if stamps else 0.0)


def replay_results(
    bundle: Bundle, values: FloatArray, detection: DetectionConfig = DEFAULT_DETECTION
) -> Iterator[LineResult]:
    """Feed raw rows (rows x channels, bundle order) to the live monitor, one at a time:
    yield the monitor's whole `LineResult` per row."""
    from agent.app import build_monitor  # the agent's own constructor, not a copy of it

    monitor = build_monitor(replay_config(bundle.path, detection), bundle)
    names = monitor.channels
    for i, row in enumerate(values):
        readings = {
            name: TagReading(float(v))
            if math.isfinite(v)
            else TagReading(math.nan, Quality.BAD, "empty cell")
            for name, v in zip(names, row, strict=True)
        }
        yield monitor.process(Sample(ts=float(i), source=SOURCE, readings=readings))


def replay_rows(
    bundle: Bundle, values: FloatArray, detection: DetectionConfig = DEFAULT_DETECTION
) -> Iterator[tuple[float, bool, bool, tuple[float, ...], bool]]:
    """Feed raw rows (rows x channels, bundle order) to the live monitor, one at a time:
    yield (score, vae alarm, spc alarm, contributions, fused decision) per row."""
    names = bundle.manifest.channel_names
    for result in replay_results(bundle, values, detection):
        score = result.score
        yield (
            score.value if score is not None else math.nan,
            result.anomaly_active,
            result.spc_alarm_active,
            score.contributions if score is not None else (math.nan,) * len(names),
            result.alarm_active,
        )


def replay_csv(
    bundle_dir: Path, input_csv: Path, detection: DetectionConfig = DEFAULT_DETECTION
) -> Replay:
    """Replay one CSV through a bundle; DataError names the file, column and row."""
    bundle = load_bundle(bundle_dir)
    channels = bundle.manifest.channel_names
    table = read_csv(input_csv, channels, option="the bundle's channels")
    if table.values.shape[0] == 0:
        raise DataError(f"{input_csv}: no data rows")
    out = list(replay_rows(bundle, table.values, detection))
    times = read_times(input_csv)
    return Replay(
        channels=channels,
        score=np.array([o[0] for o in out], dtype=np.float64),
        vae_alarm=np.array([o[1] for o in out], dtype=bool),
        spc_alarm=np.array([o[2] for o in out], dtype=bool),
        contrib=np.array([o[3] for o in out], dtype=np.float64).reshape(len(out), len(channels)),
        lines=table.lines,
        times=times if len(times) == len(out) else [""] * len(out),
        anomaly=np.array([o[4] for o in out], dtype=bool),
    )


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
    detection = DetectionConfig(
        raise_after=args.raise_after,
        clear_after=args.clear_after,
        clear_ratio=args.clear_ratio,
        spc_hits=DEFAULT_DETECTION.spc_hits,
        spc_span=DEFAULT_DETECTION.spc_span,
        flatline_samples=DEFAULT_DETECTION.flatline_samples,
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
    p.add_argument("--raise-after", type=int, default=d.raise_after, help="debounce (3)")
    p.add_argument("--clear-after", type=int, default=d.clear_after, help="clear after (10)")
    p.add_argument("--clear-ratio", type=float, default=d.clear_ratio, help="hysteresis (0.8)")
    p.add_argument(
        "--fusion", choices=FUSIONS, help="how VAE and SPC alarms fuse (default: the bundle's)"
    )
    p.add_argument(
        "--smoothing", type=float, help="EWMA weight of the newest score (default: the bundle's)"
    )
    p.set_defaults(func=cmd_score)
