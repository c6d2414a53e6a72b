"""Time to Bad when a PLC dies, and time back to Good when it returns, over repeated kills.

    python benchmarks/time_to_bad.py [--kills 20] [--poll 0.1] [--timeout 0.05] [--backoff 0.5]

The agent's own Modbus hub (agent.sources.modbus.ModbusHub) polls the simulated line's pymodbus
TCP server on loopback, as the agent does. Each round the server is stopped (its socket closed,
as a PLC that loses power closes nothing but the kernel answers refused), then started again on
the same port after `--down` seconds. Measured from the hub's own samples:

- time to Bad: from the stop to the first sample whose tags are not good;
- time to Good: from the restart to the first sample whose tags are all good again.

Printed: median, p99 and max of each over `--kills` rounds, beside the bounds the config sets
(a poll interval plus the timeout to Bad; the largest backoff step plus a poll to Good).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.config import DeviceConfig, PlcConfig, load_tag_map  # noqa: E402
from agent.demo.run import free_port  # noqa: E402
from agent.demo.simulator.plc import SimulatedPlc, default_tag_map  # noqa: E402
from agent.demo.simulator.process import ExtrusionLine  # noqa: E402
from agent.sources.modbus import ModbusHub  # noqa: E402
from agent.types import Quality, Sample  # noqa: E402


def plc_config(port: int, poll: float, timeout: float, backoff: float) -> PlcConfig:
    """The simulator's PLC as a site's [[plc]] with these timings."""
    device = DeviceConfig("extruder", 1, poll, load_tag_map(default_tag_map()), 8, 125, 2000)
    return PlcConfig(
        name="bench-plc", protocol="modbus-tcp", host="127.0.0.1", port=port, serial=None,
        timeout_s=timeout, max_backoff_s=backoff, poll_interval_s=poll, devices=(device,),
    )  # fmt: skip


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def measure(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Kill and restart the server `--kills` times; the seconds to Bad and to Good of each."""
    port = free_port()
    line = ExtrusionLine(seed=1)
    hub = ModbusHub(plc_config(port, args.poll, args.timeout, args.backoff))
    latest: list[tuple[float, bool]] = []

    def emit(sample: Sample) -> None:
        good = all(r.quality is Quality.GOOD for r in sample.readings.values())
        latest.append((time.monotonic(), good))

    async def first(after: float, good: bool, limit: float = 30.0) -> float:
        start = time.monotonic()
        while time.monotonic() - start < limit:
            for at, ok in latest:
                if at > after and ok is good:
                    return at - after
            await asyncio.sleep(0.005)
        raise TimeoutError(f"no {'good' if good else 'bad'} sample within {limit} s")

    to_bad, to_good = [], []
    plc = SimulatedPlc(line, port=port, period_s=args.poll)
    await plc.start()
    poller = asyncio.create_task(hub.run(emit))
    try:
        await first(time.monotonic() - 1.0, True)
        for _ in range(args.kills):
            await asyncio.sleep(0.5)  # a stretch of good polls first
            latest.clear()
            stopped = time.monotonic()
            await plc.stop()
            to_bad.append(await first(stopped, False))
            await asyncio.sleep(args.down)
            plc = SimulatedPlc(line, port=port, period_s=args.poll)
            await plc.start()
            restarted = time.monotonic()
            to_good.append(await first(restarted, True))
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await plc.stop()
    return to_bad, to_good


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--poll", type=float, default=0.1, help="poll_interval_s")
    ap.add_argument("--timeout", type=float, default=0.05, help="timeout_s")
    ap.add_argument("--backoff", type=float, default=0.5, help="max_backoff_s")
    ap.add_argument("--down", type=float, default=1.0, help="seconds the PLC stays down")
    args = ap.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # the refused connects are the point
    to_bad, to_good = asyncio.run(measure(args))
    print(
        f"PLC killed {args.kills} times: poll {args.poll:g} s, timeout {args.timeout:g} s, "
        f"max backoff {args.backoff:g} s, down {args.down:g} s each time"
    )
    print(f"{'seconds':<14}{'median':>9}{'p99':>9}{'max':>9}{'bound':>9}")
    for name, values, bound in (
        ("to Bad", to_bad, args.poll + args.timeout),
        ("back to Good", to_good, args.backoff + args.poll),
    ):
        print(
            f"{name:<14}{statistics.median(values):>9.3f}{p99(values):>9.3f}"
            f"{max(values):>9.3f}{bound:>9.3f}"
        )


if __name__ == "__main__":
    main()
