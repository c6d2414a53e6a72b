"""Cost of the drift-tolerant shift detector per row, by channel count.

The detector: agent.pipeline.detectors.shift.

    python benchmarks/shift.py [--rows 5000]

Each row is one `ShiftDetector.update` (all channels watched, a step half way so the alarm
and the frozen baseline are exercised); the table gives the median and p99 in microseconds
and the state size as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.bundles.manifest import ShiftParams
from agent.pipeline.detectors.shift import ShiftDetector


def measure(channels: int, rows: int) -> tuple[float, float, int]:
    """Median and p99 microseconds per update, and the JSON state's size in bytes."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(rows, channels))
    data[rows // 2 :, 0] += 8.0
    params = ShiftParams(
        channels=channels,
        watched=tuple(range(channels)),
        fast=0.2,
        slow=0.005,
        scale=(0.5,) * channels,
        threshold=3.0,
    )
    det = ShiftDetector(params)
    took = []
    for row in data:
        start = time.perf_counter_ns()
        det.update(row)
        took.append((time.perf_counter_ns() - start) / 1000.0)
    p99 = float(np.percentile(took, 99))
    return statistics.median(took), p99, len(json.dumps(det.state()))


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    print("| channels | median µs/row | p99 µs/row | state JSON bytes |")
    print("|---|---|---|---|")
    for channels in (8, 64, 1024):
        median, p99, size = measure(channels, args.rows)
        print(f"| {channels} | {median:.1f} | {p99:.1f} | {size:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
