"""Streaming SPC cost per sample, every chart with every run rule on. Prints a table.

    python benchmarks/spc.py [--samples 5000] [--channels 1,64,1024] [--rules all]

For each chart and channel count, one sample row (one reading per channel) is fed to the
chart's `update`, and the points of all its plots (`z` and `beyond` of each `ChartPoint`) go
through one `RunRules` engine as one row of plots x channels: a chart with two plots (I and
MR, X-bar and R, CUSUM upper and lower) pays one rules call, not two. The table gives
the wall time per sample row in microseconds, on one core (numpy ufuncs are single-threaded):
first, per plotted point, the medians of its three parts (the chart's `update`; reading `z`
and `beyond` off the points and joining the plots; the `RunRules.update`); then the whole
row: median, p99 and p10 over `--samples` rows after a warm-up, and `cpu mean`, the thread's
CPU time over those rows divided by their number (timing calls included), which a busy shared
machine inflates less than wall time. The header gives the 1-minute load average at the start.
X-bar charts plot once per subgroup of five rows, so their median row is the cheap filling
one; `per point` is the median total over the rows that plotted, and `goal` judges it.
The run rules on CUSUM sums are not a textbook use; they are timed as an upper bound.
The goal (issue 4) is 1,024 channels in under 100 µs per sample.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.core.spc import (
    AttributeChart,
    CusumChart,
    EwmaChart,
    ImrChart,
    RunRules,
    XbarChart,
    fit_attribute,
    fit_imr,
    fit_xbar,
    rule_set,
)

SUBGROUP = 5
SAMPLE_SIZE = 200.0  # parts inspected per sample, for p, np and u


def charts(channels: int, rng: np.random.Generator) -> dict[str, tuple[Any, Callable[[], Any]]]:
    """Each chart fitted on reference data, with a generator of its live rows."""
    reference = rng.normal(10.0, 1.0, size=(200, channels))
    imr = fit_imr(reference)
    subgroups = reference.reshape(40, SUBGROUP, channels)
    defects = rng.poisson(6.0, size=(60, channels)).astype(np.float64)
    sizes = np.full((60, channels), SAMPLE_SIZE)

    def reading() -> Any:
        return (rng.normal(10.2, 1.1, size=channels),)

    def counts() -> Any:
        return (rng.poisson(6.5, size=channels).astype(np.float64),)

    def counts_and_sizes() -> Any:
        return (*counts(), np.full(channels, SAMPLE_SIZE))

    return {
        "imr": (ImrChart(imr), reading),
        "xbar-r": (XbarChart(fit_xbar(subgroups, "range")), reading),
        "xbar-s": (XbarChart(fit_xbar(subgroups, "stdev")), reading),
        "ewma": (EwmaChart(imr.center, imr.sigma, lam=0.2, nsigmas=3.0), reading),
        "cusum": (CusumChart(imr.center, imr.sigma, k=0.5, h=5.0), reading),
        "p": (AttributeChart(fit_attribute("p", defects, sizes)), counts_and_sizes),
        "np": (AttributeChart(fit_attribute("np", defects, sizes)), counts_and_sizes),
        "c": (AttributeChart(fit_attribute("c", defects)), counts),
        "u": (AttributeChart(fit_attribute("u", defects, sizes)), counts_and_sizes),
    }


def bench(chart: Any, row: Callable[[], Any], channels: int, samples: int, rules: str) -> dict:
    """Per-row wall times (µs) of the chart update, of z/beyond, and of the run rules."""
    n_plots = len(chart.plot_names)
    engine = RunRules(rule_set(rules), channels * n_plots)
    rows = [row() for _ in range(samples + samples // 10)]
    warm = samples // 10
    times = np.zeros((len(rows), 3))
    plotted = np.zeros(len(rows), dtype=bool)
    clock = time.perf_counter
    cpu_start = 0.0
    for i, args in enumerate(rows):
        if i == warm:
            cpu_start = time.thread_time()
        t0 = clock()
        point = chart.update(*args)
        t1 = t2 = clock()
        if point is not None:
            plots = point.plots
            if n_plots == 1:
                z, beyond = plots[0].z, plots[0].beyond
            else:
                z = np.concatenate([p.z for p in plots])
                beyond = np.concatenate([p.beyond for p in plots])
            t2 = clock()
            engine.update(z, beyond)
            plotted[i] = True
        t3 = clock()
        times[i] = (t1 - t0, t2 - t1, t3 - t2)
    cpu = (time.thread_time() - cpu_start) / samples
    return {
        "cpu": cpu * 1e6,
        "times": times[warm:] * 1e6,
        "plotted": plotted[warm:],
        "plots": n_plots,
    }


def main() -> None:
    """Run every chart at every channel count and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--channels", default="1,64,1024")
    parser.add_argument("--rules", default="all", help="nelson | we | all | none | N1,N2,...")
    args = parser.parse_args()
    sizes = [int(c) for c in args.channels.split(",")]
    rng = np.random.default_rng(4)
    load = os.getloadavg()[0]
    print(
        f"SPC streaming cost per sample, rules={args.rules} ({len(rule_set(args.rules).ids)} "
        f"rules), {args.samples} samples, µs (load {load:.1f} on {os.cpu_count()} cores)"
    )
    header = (
        f"{'chart':7} {'chans':>5} {'plots':>5} | {'chart':>6} {'z/beyond':>8} {'rules':>6} | "
        f"{'median':>7} {'p99':>8} {'p10':>6} {'cpu mean':>8} | {'per point':>9} {'goal':>4}"
    )
    print("per plotted point (medians):   chart update | z and beyond | run rules")
    print(header)
    print("-" * len(header))
    for channels in sizes:
        for name, (chart, row) in charts(channels, rng).items():
            r = bench(chart, row, channels, args.samples, args.rules)
            times, plotted = r["times"], r["plotted"]
            parts = np.median(times[plotted], axis=0)
            total = times.sum(axis=1)
            point = float(np.median(total[plotted]))
            goal = "ok" if channels < 1024 or point < 100 else "MISS"
            print(
                f"{name:7} {channels:5d} {r['plots']:5d} | {parts[0]:6.1f} {parts[1]:8.1f} "
                f"{parts[2]:6.1f} | {np.median(total):7.1f} {np.percentile(total, 99):8.1f} "
                f"{np.percentile(total, 10):6.1f} {r['cpu']:8.1f} | {point:9.1f} {goal:>4}"
            )
        print()


if __name__ == "__main__":
    main()
