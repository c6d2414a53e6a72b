"""What recording the polled values costs: the loop's `offer` and the writer thread. A table.

    python benchmarks/record.py [--shapes 10x100,50x20,100x100] [--seconds 3] [--runs 3]

Each shape is `TAGSxHZ`: one source polling that many tags that many times a second, in real
time, into a `Recorder` (agent/sinks/recorder.py) writing to the disk under `--dir` (default a
temp dir) with the default `[record]` settings (fsync every second). Per shape, the median of
`--runs` runs of `--seconds` wall seconds each:

- `offer`: CPU seconds per wall second the event loop spends in `Recorder.offer` (what the
  hot path pays), and the same per 1,000 values/s;
- `writer`: CPU seconds per wall second of the worker thread's writes (formatting the rows,
  `os.write`, fsync), and the same per 1,000 values/s;
- `bytes/row` and `MB/day`: the file size the shape makes (values are random floats: the
  worst case, 17 significant digits each).

Building the samples is the source's work and is not counted. The header gives the 1-minute
load average at the start; a shared machine inflates the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config.record import RecordConfig
from agent.sinks.recorder import Recorder
from agent.types import Sample, TagReading

TICK_S = 0.01  # the producer offers what is due every 10 ms


@dataclass(frozen=True)
class Run:
    """One run's figures: CPU seconds per wall second, bytes per row."""

    offer: float
    writer: float
    bytes_per_row: float


def pool(tags: list[str], size: int, seed: int) -> list[dict[str, TagReading]]:
    """Readings to cycle through: random floats, every tag good."""
    rng = np.random.default_rng(seed)
    values = rng.normal(50.0, 10.0, (size, len(tags))).tolist()
    return [{t: TagReading(v) for t, v in zip(tags, row, strict=True)} for row in values]


async def one_run(directory: Path, n_tags: int, hz: float, seconds: float, seed: int) -> Run:
    """Record `n_tags` tags at `hz` for `seconds` wall seconds; measure both sides."""
    tags = [f"tag_{i:03d}" for i in range(n_tags)]
    readings = pool(tags, 512, seed)
    recorder = Recorder(RecordConfig(path=directory), f"bench-{seed}", tags)
    writer = asyncio.create_task(recorder.run())
    offer_cpu, sent = 0.0, 0
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * hz) + 1
        samples = [
            Sample(time.time(), "plc", readings[i % len(readings)]) for i in range(sent, due)
        ]
        t0 = time.thread_time()
        for s in samples:
            recorder.offer(s)
        offer_cpu += time.thread_time() - t0
        sent = due
        await asyncio.sleep(TICK_S)
    wall = time.monotonic() - start
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    await recorder.aclose()
    stats = recorder.stats
    assert stats.drops == 0 and stats.errors == 0 and stats.rows == sent
    return Run(offer_cpu / wall, stats.writer_cpu_s / wall, stats.bytes / max(stats.rows, 1))


def main() -> None:
    """Parse the options, run every shape, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="10x100,50x20,100x100", help="TAGSxHZ,...")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    shapes = [tuple(float(x) for x in s.split("x")) for s in args.shapes.split(",")]
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}; {args.runs} runs of "
          f"{args.seconds:g} s per shape, medians")  # fmt: skip
    head = (
        f"{'tags':>5} {'Hz':>5} {'values/s':>9} {'offer s/s':>10} {'per 1k/s':>9} "
        f"{'writer s/s':>11} {'per 1k/s':>9} {'bytes/row':>10} {'MB/day':>8}"
    )
    print(head)
    print("-" * len(head))
    for n_tags, hz in shapes:
        runs = []
        for seed in range(args.runs):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                runs.append(asyncio.run(one_run(Path(tmp), int(n_tags), hz, args.seconds, seed)))
        offer = statistics.median(r.offer for r in runs)
        writer = statistics.median(r.writer for r in runs)
        row_bytes = statistics.median(r.bytes_per_row for r in runs)
        per_k = 1000.0 / (n_tags * hz)
        print(
            f"{int(n_tags):>5} {hz:>5g} {int(n_tags * hz):>9} {offer:>10.5f} "
            f"{offer * per_k:>9.5f} {writer:>11.5f} {writer * per_k:>9.5f} "
            f"{row_bytes:>10.0f} {row_bytes * hz * 86400 / 1e6:>8.0f}"
        )


if __name__ == "__main__":
    main()
