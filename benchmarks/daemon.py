"""The daemon's numbers: start to READY, memory under a long simulated load, journal speed.

    python benchmarks/daemon.py [--bundle DIR] [--line-hours 1] [--speedup 100] [--runs 3]

1. Start to READY: `lineside run` against `lineside simulate` (real processes, loopback), with
   a notify socket this script listens on; seconds from spawn to READY=1 (median of --runs).
2. Memory: VmRSS right after READY, then while the agent processes `--line-hours` of line time
   at `--speedup` (the PLC polled `speedup` times a second instead of once), and at the end;
   the line-hours are counted from the agent's own Agent/SamplesProcessed (1 sample = 1 line
   second), not from the wall clock.
3. Journal, in-process on a real file (synchronous=FULL, WAL): throughput of a flood of
   events (events/s committed), and at a steady 1,000 events/s the commit latency (one
   batch's transaction) and the delay from `send` to committed, median and p99.

Without --bundle a small bundle is trained first through the export path (needs torch).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.demo.run import free_port, write_historian, write_site_file  # noqa: E402
from agent.paths import firmware_configs  # noqa: E402
from agent.sinks.journal import Journal  # noqa: E402
from agent.types import Event, EventKind, EventState  # noqa: E402

LINESIDE = [sys.executable, "-m", "agent"]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def train_bundle(work: Path) -> Path:
    """A small bundle through the real export path (as the tests build it)."""
    from export.pipeline import TrainOptions, run_train

    csv_path = work / "historian.csv"
    write_historian(csv_path, rows=7200, seed=11)
    out = work / "bundle"
    tag_map = firmware_configs() / "plc" / "simulated-extruder.toml"
    run_train(TrainOptions(inputs=[csv_path], out=out, epochs=25, seed=0, tag_map=tag_map,
                           label="bench", quiet=True))  # fmt: skip
    return out


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*LINESIDE, *args], cwd=REPO, env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


async def samples_processed(site: Path) -> int:
    """Agent/SamplesProcessed, read by a trusted SignAndEncrypt client (the site offers no
    unsecured endpoint)."""
    from tests.scada_helpers import trusted_anonymous_client

    async with await trusted_anonymous_client(site, site.parent / "client") as client:
        ns = await client.get_namespace_index("urn:lineside")
        return int(await client.get_node(f"ns={ns};s=Agent/SamplesProcessed").read_value())


def run_agent(bundle: Path, speedup: float, hold_s: float) -> dict[str, float]:
    """One agent run: time to READY, RSS at READY, then RSS during and after `hold_s`."""
    state = Path(tempfile.mkdtemp(prefix="lineside-bench-"))
    plc_port, opcua_port = free_port(), free_port()
    sim = spawn(["simulate", "--port", str(plc_port), "--speedup", str(speedup)])
    wait_port(plc_port)
    site = write_site_file(state, bundle, plc_port, opcua_port)
    text = site.read_text().replace("poll_interval_s = 1.0", f"poll_interval_s = {1 / speedup}")
    site.write_text(text.replace("timeout_s = 0.5", f"timeout_s = {0.5 / speedup}"))
    address = f"@lineside-bench-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:])
    sock.settimeout(60)
    started = time.monotonic()
    agent = spawn(["run", "--config", str(site), "--log-level", "warning"],
                  {"NOTIFY_SOCKET": address})  # fmt: skip
    result: dict[str, float] = {}
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
        result["ready_s"] = time.monotonic() - started
        result["rss_ready"] = rss_mb(agent.pid)
        if hold_s > 0:
            first = asyncio.run(samples_processed(site))
            held = time.monotonic()
            rss: list[float] = []
            while time.monotonic() - held < hold_s:
                time.sleep(min(5.0, hold_s / 10))
                rss.append(rss_mb(agent.pid))
            result["samples"] = asyncio.run(samples_processed(site)) - first
            result["wall_s"] = time.monotonic() - held
            result["rss_mid"] = rss[len(rss) // 2]
            result["rss_end"] = rss[-1]
    finally:
        for proc in (agent, sim):
            proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        agent.wait(timeout=30)
        result["stop_s"] = time.monotonic() - stopping
        result["exit"] = agent.returncode
        sim.wait(timeout=30)
        sock.close()
    return result


def event(i: int) -> Event:
    return Event(
        ts=time.time(), line="l1", kind=EventKind.ANOMALY, state=EventState.RAISED,
        detector="vae", severity=700, message=f"bench {i}", tag="melt_pressure", score=2.0,
        threshold=1.0, details={"i": i, "contributions": {"melt_pressure": 0.7}},
    )  # fmt: skip


async def journal_flood(path: Path, count: int) -> float:
    """Events/s committed when the queue is kept full."""
    journal = Journal(path, max_queue=10_000)
    await journal.open()
    writer = asyncio.create_task(journal.run())
    started = time.perf_counter()
    sent = 0
    while sent < count:
        while sent < count and journal.send(event(sent)):
            sent += 1
        await asyncio.sleep(0.001)
    while journal.stats.written < count:
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    await journal.aclose()
    return count / elapsed


async def journal_steady(path: Path, rate: int, seconds: float) -> tuple[list[float], list[float]]:
    """Per-batch commit times and send->commit delays (ms) at a steady event rate."""
    sent_at: dict[str, float] = {}
    delays: list[float] = []
    commits: list[float] = []
    journal = Journal(path)

    def committed(ids: list[str]) -> None:
        now = time.perf_counter()
        commits.append(journal.stats.last_commit_ms)
        delays.extend((now - sent_at.pop(i)) * 1e3 for i in ids)

    journal.on_commit = committed
    await journal.open()
    writer = asyncio.create_task(journal.run())
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds:
        due = int((time.perf_counter() - started) * rate)
        while i < due:
            e = event(i)
            sent_at[e.event_id] = time.perf_counter()
            journal.send(e)
            i += 1
        await asyncio.sleep(0.001)
    while sent_at:
        await asyncio.sleep(0.01)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    await journal.aclose()
    return commits, delays


def pct(values: list[float]) -> str:
    return f"{np.median(values):8.2f} {np.percentile(values, 99):8.2f}"


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", help="bundle directory (default: train a small one)")
    parser.add_argument("--line-hours", type=float, default=1.0)
    parser.add_argument("--speedup", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--journal-only", action="store_true", help="only the journal table")
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="lineside-bench-"))
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    if not args.journal_only:
        bench_agent(args, Path(args.bundle) if args.bundle else train_bundle(work))
    bench_journal(work)


def bench_agent(args: argparse.Namespace, bundle: Path) -> None:
    """The agent-process table."""

    starts = [run_agent(bundle, 10.0, 0.0) for _ in range(args.runs)]
    hold_s = args.line_hours * 3600 / args.speedup
    load = run_agent(bundle, args.speedup, hold_s)
    line_hours = load["samples"] / 3600
    print(f"\nagent process ({args.runs} starts; load: {args.speedup:g}x for {hold_s:.0f} s)")
    print(f"{'measure':<58} value")
    ready = [r["ready_s"] for r in starts]
    rss_ready = statistics.median(r["rss_ready"] for r in starts)
    rows = [
        ("spawn -> READY=1, median of runs", f"{statistics.median(ready):.2f} s "
         f"(min {min(ready):.2f}, max {max(ready):.2f})"),
        ("RSS at READY, median of runs", f"{rss_ready:.0f} MB"),
        ("RSS at READY (load run)", f"{load['rss_ready']:.0f} MB"),
        ("RSS half-way through the load", f"{load['rss_mid']:.0f} MB"),
        (f"RSS after {line_hours:.2f} line-hours ({load['samples']:.0f} samples)",
         f"{load['rss_end']:.0f} MB ({load['rss_end'] - load['rss_ready']:+.1f} MB)"),
        ("samples processed per wall second under load", f"{load['samples'] / load['wall_s']:.0f}"),
        ("SIGTERM -> exit after the load", f"{load['stop_s']:.2f} s (exit {load['exit']:.0f})"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"{name:<58} {value}")


def bench_journal(work: Path) -> None:
    """The journal table."""
    flood = asyncio.run(journal_flood(work / "flood.sqlite", 50_000))
    commits, delays = asyncio.run(journal_steady(work / "steady.sqlite", 1000, 10.0))
    print("\njournal (SQLite WAL, synchronous=FULL, one transaction per batch)")
    print(f"{'measure':<44} {'median':>8} {'p99':>8}")
    print(f"{'flood: events/s committed (50,000 events)':<44} {flood:8.0f}")
    print(f"{'1,000 ev/s: commit of one batch (ms)':<44} {pct(commits)}")
    print(f"{'1,000 ev/s: send -> committed (ms)':<44} {pct(delays)}")
    print(f"{'1,000 ev/s: events per batch':<44} {len(delays) / len(commits):8.0f}")
    within = sum(d <= 250.0 for d in delays) / len(delays)
    print(f"{'1,000 ev/s: committed within 250 ms':<44} {within:8.2%}")


if __name__ == "__main__":
    main()
