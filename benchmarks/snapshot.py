"""What a detector state snapshot costs the loop, and what its write costs the worker. A table.

    python benchmarks/snapshot.py [--channels 8,64,1024] [--takes 300] [--writes 40]

A `LineMonitor` as the agent builds it (32-row window, I-MR chart, shift detector watching
every channel, `vae-plus-shift` fusion) is fed until its window is full; its VAE is a numpy
stand-in (a mean square per channel): the snapshot does not depend on the model, only on the
window and chart sizes. Then, per channel count:

- `take`: `DetectorSnapshots.take` -- what the event loop pays every `state_interval_s`
  (the dict of every component's state, the owner, the fingerprint); median and p99;
- `encode`: `agent.runtime.snapshots.encode` of that dict alone (the CPU part of the write,
  one component at a time so the loop can take the GIL back between the pieces);
- `write`: `write_atomically` -- encode, write, fsync, rename, fsync of the directory, in the
  worker thread, on the disk under `--dir` (default: a temp dir); median and p99;
- `size`: the file;
- `sample p99`: the loop's time per sample (`LineMonitor.process`) at p99, alone and while
  the worker thread writes snapshots back to back (they share the GIL): the worst case of
  writing off the loop as the loop sees it (the agent writes one every `state_interval_s`,
  which overlaps one or two samples); `ratio` is the second over the first.

The header gives the 1-minute load average at the start; a shared machine inflates p99s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.bundles.manifest import ShiftParams
from agent.core.spc import ImrLimits
from agent.pipeline.detectors.shift import ShiftDetector
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.detectors.vae import VaeDetector
from agent.pipeline.line import LineMonitor
from agent.pipeline.replay import DEFAULT_DETECTION
from agent.runtime.snapshot_file import encode, write_atomically
from agent.runtime.snapshots import DetectorSnapshots, Owner
from agent.types import Sample, Score, TagReading

WINDOW = 32


class SquareScore:
    """A numpy stand-in for the VAE: the mean square of each channel, against 1."""

    def score_one(self, window: np.ndarray) -> Score:
        per = (window**2).mean(axis=0)
        return Score(float(per.mean()), 1.0, tuple((per / per.sum()).tolist()))


def monitor(channels: int) -> tuple[LineMonitor, list[Sample]]:
    """A full monitor of `channels` tags and samples to feed it."""
    names = [f"tag{i}" for i in range(channels)]
    ones = np.ones(channels)
    spc = SpcDetector(ImrLimits(np.zeros(channels), ones, ones * 1.128), flatline_samples=15)
    params = ShiftParams(channels, tuple(range(channels)), 0.2, 0.005, (1.0,) * channels, 4.0)
    vae = VaeDetector(SquareScore(), WINDOW, channels)
    line = LineMonitor(
        "bench", names, vae, spc,
        DEFAULT_DETECTION, fusion="vae-plus-shift", shift=ShiftDetector(params),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    rows = rng.normal(0.0, 0.3, size=(WINDOW * 4, channels))
    samples = [
        Sample(float(t), "bench", dict(zip(names, map(TagReading, r.tolist()), strict=True)))
        for t, r in enumerate(rows)
    ]
    for sample in samples:
        line.process(sample)
    return line, samples


def timed(fn: object, n: int) -> np.ndarray:
    """Seconds per call of `fn()` over `n` calls."""
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out[i] = time.perf_counter() - t0
    return out


def per_sample(line: LineMonitor, samples: list[Sample], n: int) -> np.ndarray:
    """Seconds per `process` call over `n` samples."""
    out = np.empty(n)
    for i in range(n):
        sample = samples[i % len(samples)]
        t0 = time.perf_counter()
        line.process(sample)
        out[i] = time.perf_counter() - t0
    return out


def row(channels: int, takes: int, writes: int, folder: Path) -> list[str]:
    """One line of the table."""
    line, samples = monitor(channels)
    owner = Owner("bench", 1, "v1", list(line.channels))
    take = timed(lambda: DetectorSnapshots.take(line, owner), takes)
    snapshot = DetectorSnapshots.take(line, owner)
    encoded = timed(lambda: encode(snapshot), writes)
    path = folder / f"detector-state.bench{channels}.json"
    write = timed(lambda: write_atomically(path, snapshot), writes)
    n = max(2000, takes * 5) if channels <= 64 else takes * 3
    alone = per_sample(line, samples, n)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            write_atomically(path, snapshot)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        busy = per_sample(line, samples, n)
    finally:
        stop.set()
        thread.join()
    ms = 1e3

    def med_p99(a: np.ndarray) -> str:
        return f"{np.median(a) * ms:.3f} / {np.percentile(a, 99) * ms:.3f}"

    alone99, busy99 = np.percentile(alone, 99) * ms, np.percentile(busy, 99) * ms
    return [
        f"{channels:,}",
        med_p99(take),
        f"{np.median(encoded) * ms:.2f}",
        med_p99(write),
        f"{path.stat().st_size / 1024:.0f} KiB",
        f"{alone99:.3f} / {busy99:.3f}",
        f"{busy99 / alone99:.2f}",
    ]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", default="8,64,1024")
    parser.add_argument("--takes", type=int, default=300)
    parser.add_argument("--writes", type=int, default=40)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}; times in ms")
    header = [
        "channels", "take median / p99", "encode median", "write median / p99", "size",
        "sample p99 alone / writing", "ratio",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = [row(int(c), args.takes, args.writes, Path(tmp)) for c in args.channels.split(",")]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
