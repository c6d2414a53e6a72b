"""Offline replay: a CSV through exactly the detection objects of the live agent.

Every input row becomes one `Sample` fed to the `LineMonitor` that
`agent.pipeline.build.build_monitor` builds for the bundle (window, VAE in onnxruntime, SPC
charts, debounced alarms), so what is measured offline is what runs on the line. One output
row per input row:

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
                  (the export's default; agent.pipeline.events.fusion)
    contrib:TAG   each channel's share of the score (empty when `score` is)

A timestamp column is never a feature; `;` and `,` separators are both read (agent.core.tabular).
A cell that is empty or NaN makes that tag's reading bad for the row, as a failed PLC read
would: SPC skips it and the VAE window starts over.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.bundles.bundle import Bundle, load_bundle
from agent.config import DetectionConfig
from agent.core.tabular import TIME_COLUMNS, detect_separator, read_csv
from agent.errors import DataError
from agent.pipeline.build import build_line
from agent.pipeline.line import LineResult
from agent.types import Quality, Sample, TagReading

FloatArray = npt.NDArray[np.float64]
SOURCE = "replay"

#: The site config's defaults for `[detection]` (agent/config/site.py), used unless overridden.
DEFAULT_DETECTION = DetectionConfig()


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
    monitor = build_line(bundle, detection, SOURCE)
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
