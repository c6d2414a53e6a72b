"""Several lines in one agent against one agent per line: memory, CPU, start time.

    python benchmarks/lines.py [--bundle DIR] [--lines 1 2 4] [--hold 20] [--speedup 10]

For each N of --lines, in one run of this script: `lineside simulate` serves N simulated
extruders (one process, one port each), then
  - one agent runs a site of N `[[line]]` tables (each line its own PLC and a model), and
  - N agents each run a site of one of those lines,
every process real, on loopback, polled `speedup` times a second. Printed per N: seconds from
spawn to READY=1 (the slowest agent for the separate ones), VmRSS at READY and after --hold
seconds (summed over the separate agents), and CPU over the hold in % of one core (user +
system, summed). The ratio column is separate / one agent.

Without --bundle a small bundle is trained first through the export path (needs torch).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.demo.run import free_port  # noqa: E402
from agent.paths import firmware_configs  # noqa: E402
from benchmarks.daemon import rss_mb, spawn, train_bundle, wait_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def line_table(i: int, port: int, bundle: Path, speedup: float) -> str:
    """Line i of a site: its own simulated PLC on `port`, the bundle as its model."""
    tag_map = firmware_configs() / "plc" / "simulated-extruder.toml"
    return f"""
[[line]]
name = "line-{i}"
[line.model]
bundle = "{bundle}"
[[line.plc]]
name = "plc-{i}"
protocol = "modbus-tcp"
host = "127.0.0.1"
port = {port}
unit = 1
poll_interval_s = {1.0 / speedup}
timeout_s = {0.5 / speedup}
tag_map = "{tag_map}"
"""


def write_site(state: Path, tables: list[str]) -> Path:
    """A site of these `[[line]]` tables with its own journal and OPC-UA port."""
    state.mkdir(parents=True)
    site = state / "site.toml"
    site.write_text(
        f'[journal]\npath = "{state / "events.sqlite"}"\n'
        f'[opcua]\nendpoint = "opc.tcp://127.0.0.1:{free_port()}/lineside"\n'
        "allow_anonymous = true\n" + "".join(tables)
    )
    return site


def start_agents(sites: list[Path]) -> tuple[list[subprocess.Popen[bytes]], float]:
    """Spawn one agent per site; return them once every one said READY=1, and the seconds
    that took."""
    address = f"@lineside-bench-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:])
    sock.settimeout(120)
    started = time.monotonic()
    agents = [
        spawn(["run", "--config", str(s), "--log-level", "error"], {"NOTIFY_SOCKET": address})
        for s in sites
    ]
    ready = 0
    while ready < len(agents):
        ready += sock.recv(4096).count(b"READY=1")
    sock.close()
    return agents, time.monotonic() - started


def measure(sites: list[Path], hold_s: float) -> dict[str, float]:
    """Start agents on `sites`, hold, stop; READY time, RSS and CPU summed over them."""
    agents, ready_s = start_agents(sites)
    try:
        rss_ready = sum(rss_mb(a.pid) for a in agents)
        cpu_before = sum(cpu_s(a.pid) for a in agents)
        held = time.monotonic()
        time.sleep(hold_s)
        cpu = sum(cpu_s(a.pid) for a in agents) - cpu_before
        wall = time.monotonic() - held
        rss_end = sum(rss_mb(a.pid) for a in agents)
    finally:
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
        for agent in agents:
            agent.wait(timeout=30)
    return {"ready_s": ready_s, "rss_ready": rss_ready, "rss_end": rss_end,
            "cpu_pct": 100.0 * cpu / wall}  # fmt: skip


def bench(bundle: Path, counts: list[int], hold_s: float, speedup: float) -> None:
    """Print the table: one agent of N lines beside N agents of one line, per N."""
    print(f"{'lines':>5} {'agents':>7} {'READY s':>8} {'RSS@READY MB':>13} {'RSS end MB':>11} "
          f"{'CPU % core':>11}")  # fmt: skip
    for n in counts:
        ports = [free_port() for _ in range(n)]
        sim_args = ["simulate", "--speedup", str(speedup)]
        for port in ports:
            sim_args += ["--port", str(port)]
        sim = spawn(sim_args)
        try:
            for port in ports:
                wait_port(port)
            work = Path(tempfile.mkdtemp(prefix="lineside-lines-"))
            tables = [line_table(i, p, bundle, speedup) for i, p in enumerate(ports)]
            one = measure([write_site(work / "one", tables)], hold_s)
            rows = [("1", one)]
            if n > 1:
                sites = [write_site(work / f"sep-{i}", [t]) for i, t in enumerate(tables)]
                rows.append((str(n), measure(sites, hold_s)))
            for agents, r in rows:
                print(f"{n:>5} {agents:>7} {r['ready_s']:>8.1f} {r['rss_ready']:>13.0f} "
                      f"{r['rss_end']:>11.0f} {r['cpu_pct']:>11.1f}")  # fmt: skip
            if n > 1:
                sep = rows[1][1]
                print(f"{n:>5} {'ratio':>7} {sep['ready_s'] / one['ready_s']:>8.2f} "
                      f"{sep['rss_ready'] / one['rss_ready']:>13.2f} "
                      f"{sep['rss_end'] / one['rss_end']:>11.2f} "
                      f"{sep['cpu_pct'] / one['cpu_pct']:>11.2f}")  # fmt: skip
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=30)


def main() -> None:
    """Parse the options and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", help="bundle directory (default: train a small one)")
    parser.add_argument("--lines", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--hold", type=float, default=20.0, help="seconds measured per run")
    parser.add_argument("--speedup", type=float, default=10.0, help="polls per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        bundle = Path(args.bundle) if args.bundle else train_bundle(Path(work))
        bench(bundle.resolve(), args.lines, args.hold, args.speedup)


if __name__ == "__main__":
    main()
