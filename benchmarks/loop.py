"""Detection cost per sample, start-up time and memory of the agent. Prints tables.

    python benchmarks/loop.py [--bundle .demo/bundle] [--samples 5000]

1. Per-sample cost of the detection loop, in-process: the SPC update alone, the VAE on one
   window alone (int8 and fp32), and `LineMonitor.process` whole (SPC + window + VAE +
   alarms), median and p99 in microseconds.
2. The agent as a process: `lineside run` against `lineside simulate` (both real processes
   on loopback); seconds from spawning the agent to the first good value an OPC-UA client
   reads from it, and its resident memory after it has run for 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.bundles.bundle import load_bundle  # noqa: E402
from agent.demo.run import demo_config, ensure_bundle, free_port, write_site_file  # noqa: E402
from agent.demo.simulator.process import SIGNAL_NAMES, ExtrusionLine  # noqa: E402
from agent.pipeline.build import build_monitor  # noqa: E402
from agent.pipeline.detectors.vae import VaeModel  # noqa: E402
from agent.types import Sample, TagReading  # noqa: E402


def percentiles(times_s: list[float]) -> tuple[float, float]:
    """Median and p99 in microseconds."""
    us = np.array(times_s) * 1e6
    return float(np.median(us)), float(np.percentile(us, 99))


def bench_in_process(bundle_path: Path, samples: int) -> list[tuple[str, float, float]]:
    """Time each stage of the detection loop on simulated samples."""
    bundle = load_bundle(bundle_path)
    config = demo_config(Path(tempfile.mkdtemp()), bundle_path, 1, 2, 1.0)
    line = ExtrusionLine(seed=5)
    rows = [line.step() for _ in range(samples)]
    window = bundle.manifest.window
    rows_arr = np.array(rows)
    results = []

    monitor = build_monitor(config, bundle)
    spc_times = []
    for row in rows_arr:
        t = time.perf_counter()
        monitor.spc.update(row)
        spc_times.append(time.perf_counter() - t)
    results.append(("SPC update (9 tags, I-MR + flatline)", *percentiles(spc_times)))

    for precision in ("int8", "fp32"):
        vae = VaeModel(bundle, precision=precision)
        times = []
        for i in range(window, samples):
            w = rows_arr[i - window : i]
            t = time.perf_counter()
            vae.score_one(w)
            times.append(time.perf_counter() - t)
        results.append((f"VAE score_one ({precision}, window {window}x9)", *percentiles(times)))

    for precision in ("int8", "fp32"):
        detection = dataclasses.replace(config.detection, precision=precision)
        monitor = build_monitor(dataclasses.replace(config, detection=detection), bundle)
        times = []
        for i, row in enumerate(rows_arr):
            sample = Sample(
                ts=float(i),
                source="bench",
                readings={n: TagReading(float(v)) for n, v in zip(SIGNAL_NAMES, row, strict=True)},
            )
            t = time.perf_counter()
            monitor.process(sample)
            times.append(time.perf_counter() - t)
        results.append((f"LineMonitor.process, whole ({precision})", *percentiles(times[window:])))
    return results


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def first_good_value(site: Path, started: float, timeout: float = 60.0) -> float:
    """Seconds from `started` until a trusted SignAndEncrypt client reads a good screw_speed."""
    from tests.scada_helpers import trusted_anonymous_client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = await trusted_anonymous_client(site, site.parent / "client")
        try:
            await client.connect()
        except (TimeoutError, OSError, Exception):
            await asyncio.sleep(0.05)
            continue
        try:
            ns = await client.get_namespace_index("urn:lineside")
            node = client.get_node(f"ns={ns};s=Lines/extruder-1/Signals/screw_speed/Value")
            while time.monotonic() < deadline:
                dv = await node.read_data_value(raise_on_bad_status=False)
                if dv.StatusCode.is_good():
                    return time.monotonic() - started
                await asyncio.sleep(0.02)
        finally:
            await client.disconnect()
    raise TimeoutError("no good value within the timeout")


def bench_process(bundle: Path) -> list[tuple[str, str]]:
    """Start-up time and memory of `lineside run` as a real process."""
    state = Path(tempfile.mkdtemp())
    plc_port, opcua_port = free_port(), free_port()
    lineside = [sys.executable, "-m", "agent"]
    sim = subprocess.Popen(
        [*lineside, "simulate", "--port", str(plc_port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)
    site = write_site_file(state, bundle, plc_port, opcua_port)
    started = time.monotonic()
    agent = subprocess.Popen(
        [*lineside, "run", "--config", str(site), "--log-level", "warning"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        to_first = asyncio.run(first_good_value(site, started))
        time.sleep(max(0.0, 10.0 - (time.monotonic() - started)))
        rss, peak = rss_mb(agent.pid)
    finally:
        for proc in (agent, sim):
            proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        agent.wait(timeout=30)
        stop_s = time.monotonic() - stopped
        sim.wait(timeout=30)
    return [
        ("spawn -> first good value read by an OPC-UA client", f"{to_first:.2f} s"),
        ("resident memory after 10 s (VmRSS)", f"{rss:.0f} MB"),
        ("peak resident memory (VmHWM)", f"{peak:.0f} MB"),
        ("SIGTERM -> exit", f"{stop_s:.2f} s (exit code {agent.returncode})"),
    ]


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", help="default: the demo's, built when absent")
    parser.add_argument("--samples", type=int, default=5000)
    args = parser.parse_args()
    # The demo bundle (`make demo` leaves it in .demo/), built through the export path
    # when absent, so `make bench` runs from a clean clone.
    bundle = Path(args.bundle) if args.bundle else ensure_bundle(REPO / ".demo", sys.stderr)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    load_bundle(bundle)  # fail early with the reason if it is not there
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, bundle {bundle}")
    print(f"\nper-sample cost over {args.samples} samples (microseconds)")
    print(f"{'stage':<48} {'median':>8} {'p99':>8}")
    for name, median, p99 in bench_in_process(bundle, args.samples):
        print(f"{name:<48} {median:8.1f} {p99:8.1f}")
    print("\nagent process (lineside run against lineside simulate, loopback)")
    for name, value in bench_process(bundle):
        print(f"{name:<52} {value}")


if __name__ == "__main__":
    main()
