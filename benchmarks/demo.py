"""Detection delay per fault type and false alarms of `lineside demo`, over several seeds.

    python benchmarks/demo.py [--seeds 2024 1 2] [--seconds 60] [--speedup 10]

Each seed is one full demo run (a different simulated line: other noise, other hidden
states) through the real CLI, `lineside demo --json`. Delays are in line seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_demo(seed: int, seconds: float, speedup: float) -> dict:
    """One demo run; its JSON summary."""
    command = [
        sys.executable,
        "-m",
        "agent",
        "demo",
        "--json",
        "--no-view",
        "--seconds",
        str(seconds),
        "--speedup",
        str(speedup),
        "--seed",
        str(seed),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print one row per fault type, one column per seed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[2024, 1, 2, 3, 4])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--speedup", type=float, default=10.0)
    args = parser.parse_args()
    runs = {seed: run_demo(seed, args.seconds, args.speedup) for seed in args.seeds}
    kinds = [f["kind"] for f in runs[args.seeds[0]]["faults"]]
    print(f"detection delay in line seconds (detector), {args.speedup:g}x, seeds {args.seeds}")
    header = "".join(f"{'seed ' + str(s):>14}" for s in args.seeds)
    print(f"{'fault':<10}{header}{'median':>9}{'missed':>8}")
    for i, kind in enumerate(kinds):
        cells, delays = [], []
        for seed in args.seeds:
            fault = runs[seed]["faults"][i]
            if fault["delay_s"] is None:
                cells.append(f"{'missed':>14}")
            else:
                delays.append(fault["delay_s"])
                cells.append(f"{fault['delay_s']:>8.1f} ({fault['detector']})")
        median = f"{statistics.median(delays):9.1f}" if delays else f"{'-':>9}"
        print(f"{kind:<10}{''.join(cells)}{median}{len(args.seeds) - len(delays):>8}")
    alarms = sum(r["false_alarms"] for r in runs.values())
    normal = sum(r["normal_seconds"] for r in runs.values())
    print(
        f"false alarms: {alarms} in {normal:.0f} line seconds of normal operation "
        f"({', '.join(str(r['false_alarms']) for r in runs.values())} per run)"
    )


if __name__ == "__main__":
    main()
