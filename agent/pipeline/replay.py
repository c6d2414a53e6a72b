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
    threshold     the VAE threshold the score meets (empty when `score` is)
    shift_score   the shift detector's score (fast EWMA against the slow baseline), with
    shift_threshold  its threshold, and `shift_alarm` (empty/0 when the bundle has none)
    contrib:TAG   each channel's share of the score (empty when `score` is)

`time` is the input's time cell as ISO 8601 (`2026-03-01T08:00:00`) when it parses as a date
and time, else the cell as it is. `row` numbers the file's lines, so the first data row is 2:
it is the number an editor or `sed -n 2p` shows for that row.

A timestamp column is never a feature; `;` and `,` separators are both read (agent.core.tabular).
A cell that is empty or NaN makes that tag's reading bad for the row, as a failed PLC read
would: SPC skips it and the VAE window starts over.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from agent.types import Event, Quality, Sample, TagReading

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
    threshold: FloatArray | None = None  # the VAE threshold per row, NaN where no score
    shift_score: FloatArray | None = None  # NaN where the line has no shift detector
    shift_threshold: FloatArray | None = None
    shift_alarm: npt.NDArray[np.bool_] | None = None
    values: FloatArray | None = None  # (rows, channels) the input's readings, NaN where empty
    spc_states: tuple[dict[str, str], ...] = ()  # each row's SPC state per channel
    events: tuple[tuple[int, Event], ...] = ()  # (row index, alarm edge) in order
    labels: dict[str, FloatArray] = field(default_factory=dict)  # the input's anomaly labels


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


def iso_time(cell: str) -> str:
    """The cell as ISO 8601 when it parses as a date and time, else the cell as it is.

    >>> iso_time("2020-03-09 10:14:33"), iso_time("t7")
    ('2020-03-09T10:14:33', 't7')
    """
    try:
        return datetime.fromisoformat(cell).isoformat()
    except ValueError:
        return cell


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
    results = list(replay_results(bundle, table.values, detection))
    times = [iso_time(t) for t in read_times(input_csv)]

    nan = math.nan
    vae = [r.score for r in results]
    shift = [r.shift_score for r in results]
    return Replay(
        channels=channels,
        score=np.array([nan if s is None else s.value for s in vae], dtype=np.float64),
        vae_alarm=np.array([r.anomaly_active for r in results], dtype=bool),
        spc_alarm=np.array([r.spc_alarm_active for r in results], dtype=bool),
        contrib=np.array(
            [s.contributions if s is not None else (nan,) * len(channels) for s in vae],
            dtype=np.float64,
        ).reshape(len(results), len(channels)),
        lines=table.lines,
        times=times if len(times) == len(results) else [""] * len(results),
        anomaly=np.array([r.alarm_active for r in results], dtype=bool),
        threshold=np.array([nan if s is None else s.threshold for s in vae], dtype=np.float64),
        shift_score=np.array([nan if s is None else s.value for s in shift], dtype=np.float64),
        shift_threshold=np.array(
            [nan if s is None else s.threshold for s in shift], dtype=np.float64
        ),
        shift_alarm=np.array([r.shift_alarm_active for r in results], dtype=bool),
        values=table.values,
        spc_states=tuple(dict(r.spc_states) for r in results),
        events=tuple((i, e) for i, r in enumerate(results) for e in r.events),
        labels=dict(table.labels),
    )
