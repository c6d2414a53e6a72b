"""Model updates: time to verify and install a signed bundle, and the loop during a hot swap.

    python benchmarks/update.py [--bundle DIR] [--runs 10] [--llm-mb 100]

1. `verify_file` and `install_file` on a signed bundle file: the fp32 + int8 VAE alone, and
   with an extra file of `--llm-mb` MB standing in for the explainer LLM (hashed, not run).
   Median and p99 over `--runs`, with the median of each phase (copy to staging, manifest +
   signature, extraction with sha256, onnxruntime golden run, fsync + rename + flip).
2. A real agent polling the simulated PLC at 20x (a sample every 50 ms): the time spent on
   each sample (`at_boundary` + `LineMonitor.process`) and the gap between processed samples,
   for 10 s before an install, and from the install to 2 s after the swap (at least 10 s);
   with and without the extra file. Ratios are during / before, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.bundles.install import install_file, verify_file  # noqa: E402
from agent.bundles.store import ModelStore  # noqa: E402
from agent.demo.run import demo_config, free_port  # noqa: E402
from agent.demo.simulator.plc import SimulatedPlc  # noqa: E402
from agent.demo.simulator.process import ExtrusionLine  # noqa: E402
from agent.runtime.app import Agent  # noqa: E402
from tests.bundle_kit import make_keys, resign_dir, variant  # noqa: E402

SPEEDUP = 20.0  # the demo site polls every second: a sample every 50 ms
BEFORE_S = 10.0
AFTER_S = 2.0


def train(work: Path) -> Path:
    """A bundle from the real export path (about 15 s)."""
    from agent.demo.run import write_historian
    from agent.paths import firmware_configs
    from export.pipeline import TrainOptions, run_train

    write_historian(work / "historian.csv", rows=7200, seed=11)
    out = work / "bundle"
    run_train(
        TrainOptions(
            inputs=[work / "historian.csv"], out=out, epochs=25, seed=0, quiet=True,
            tag_map=firmware_configs() / "plc" / "simulated-extruder.toml",
        )
    )  # fmt: skip
    return out


def with_llm(bundle: Path, out: Path, megabytes: int) -> Path:
    """A copy of the bundle with an extra `explainer/model.onnx` of random bytes."""
    shutil.copytree(bundle, out)
    (out / "explainer").mkdir()
    with (out / "explainer" / "model.onnx").open("wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
    return out


def stats_ms(values: list[float]) -> tuple[float, float]:
    """Median and p99 in milliseconds."""
    arr = np.array(values) * 1e3
    return float(np.median(arr)), float(np.percentile(arr, 99))


def bench_install(files: dict[int, Path], trust: Any, runs: int, work: Path) -> dict[str, Any]:
    """Verify model 2, then install it over model 1 in a fresh store, `runs` times."""
    verify, install, phases = [], [], {}
    for i in range(runs):
        t = time.perf_counter()
        verify_file(files[2], trust)
        verify.append(time.perf_counter() - t)
        store = ModelStore(work / f"store-{i}")
        install_file(files[1], store, trust)
        t = time.perf_counter()
        result = install_file(files[2], store, trust)
        install.append(time.perf_counter() - t)
        for k, v in result.seconds.items():
            phases.setdefault(k, []).append(v)
        shutil.rmtree(store.root)
    return {
        "verify": stats_ms(verify), "install": stats_ms(install),
        "phases": {k: statistics.median(v) * 1e3 for k, v in phases.items()},
    }  # fmt: skip


async def bench_swap(files: dict[int, Path], trust: Any, work: Path) -> dict[str, Any]:
    """A real agent on model 1 gets model 2 installed under it; per-sample figures around."""
    store = ModelStore(work / "agent-store")
    install_file(files[1], store, trust)
    plc_port, opcua_port = free_port(), free_port()
    config = demo_config(work, store.current_link, plc_port, opcua_port, SPEEDUP)
    plc = SimulatedPlc(ExtrusionLine(seed=5), port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    agent = Agent(config)
    agent.updates.poll_s = 0.1
    stamps: list[tuple[float, float]] = []  # (monotonic, loop latency s)
    agent.listeners.append(
        lambda r: stamps.append((time.monotonic(), agent.scada.counters.loop_latency_ms / 1e3))
    )
    ready = asyncio.Event()
    tasks = [asyncio.create_task(plc.run()), asyncio.create_task(agent.run(ready))]
    try:
        await asyncio.wait_for(ready.wait(), 10)
        while agent.monitor.last_score is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(BEFORE_S)
        t_install = time.monotonic()
        await asyncio.to_thread(install_file, files[2], store, trust)
        while agent.updates.swaps == 0:
            await asyncio.sleep(0.01)
        t_swap = time.monotonic()
        await asyncio.sleep(max(AFTER_S, BEFORE_S - (t_swap - t_install)))
        t_end = time.monotonic()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plc.stop()

    def window(a: float, b: float) -> tuple[list[float], list[float]]:
        """Per-sample work and the gaps between samples processed in [a, b)."""
        sel = [(t, lat) for t, lat in stamps if a <= t < b]
        gaps = [y[0] - x[0] for x, y in itertools.pairwise(sel)]
        return [lat for _, lat in sel], gaps

    before = window(t_install - BEFORE_S, t_install)
    during = window(t_install, t_end)
    return {
        "before": before, "during": during, "install_to_swap": t_swap - t_install,
        "drops": agent.sample_queue_drops,
    }  # fmt: skip


def main() -> None:
    """Run both benchmarks and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: train one)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--llm-mb", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="lineside-update-bench-"))
    try:
        bundle = args.bundle or train(work)
        key, trust, _ = make_keys(work)
        kinds = {"VAE fp32+int8": bundle, f"VAE + {args.llm_mb} MB LLM": with_llm(
            bundle, work / "with-llm", args.llm_mb)}  # fmt: skip
        installs, swaps = {}, {}
        for name, src in kinds.items():
            files = {}
            for v in (1, 2):
                d = variant(src, work / f"{name}-dir{v}".replace(" ", "_"), v)
                files[v] = resign_dir(d, key, work / f"{name}-v{v}.bundle".replace(" ", "_"))
            size = files[2].stat().st_size
            runs = args.runs if size < 50 << 20 else max(3, args.runs // 2)
            installs[name] = (size, runs, bench_install(files, trust, runs, work))
            swaps[name] = asyncio.run(bench_swap(files, trust, work / name.replace(" ", "_")))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\nVerify and install a signed bundle file (ms; median / p99 over runs)")
    print(f"{'bundle':<22}{'size MB':>9}{'runs':>6}{'verify':>18}{'install':>18}")
    for name, (size, runs, r) in installs.items():
        v, i = r["verify"], r["install"]
        print(
            f"{name:<22}{size / 1e6:>9.1f}{runs:>6}"
            f"{v[0]:>9.1f} /{v[1]:>7.1f}{i[0]:>9.1f} /{i[1]:>7.1f}"
        )
    print("\nInstall phases (median ms)")
    names = list(next(iter(installs.values()))[2]["phases"])
    print(f"{'bundle':<22}" + "".join(f"{n:>10}" for n in names))
    for name, (_s, _r, r) in installs.items():
        print(f"{name:<22}" + "".join(f"{r['phases'][n]:>10.1f}" for n in names))
    print("\nDetection loop around a hot swap (a sample every 50 ms; ms)")
    print(
        f"{'bundle':<22}{'phase':<8}{'n':>6}{'work p50':>10}{'work p99':>10}"
        f"{'gap p50':>10}{'gap p99':>10}{'gap max':>10}"
    )
    for name, s in swaps.items():
        for phase in ("before", "during"):
            lat, gaps = s[phase]
            w50, w99 = stats_ms(lat)
            g50, g99 = stats_ms(gaps)
            print(
                f"{name:<22}{phase:<8}{len(lat):>6}{w50:>10.3f}{w99:>10.3f}{g50:>10.2f}"
                f"{g99:>10.2f}{max(gaps) * 1e3:>10.2f}"
            )
        wb, wd = stats_ms(s["before"][0])[1], stats_ms(s["during"][0])[1]
        gb, gd = stats_ms(s["before"][1])[1], stats_ms(s["during"][1])[1]
        print(
            f"{'':<22}ratio during/before: work p99 {wd / wb:.2f}x, gap p99 {gd / gb:.2f}x; "
            f"install to swap {s['install_to_swap']:.2f} s; samples dropped {s['drops']}"
        )


if __name__ == "__main__":
    main()
