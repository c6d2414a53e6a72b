"""Modbus hub figures: throughput and CPU per 1,000 tags, batching savings, recovery time.

    python benchmarks/modbus.py [--tags 1000] [--hz 10] [--seconds 10]

1. A pymodbus TCP server in another process serves N float32 tags; one hub polls them at the
   given rate for the given time. Prints requests/s, samples/s, and the hub process's CPU
   (user+sys) per second of polling, normalised to 1,000 tags.
2. For every site config under firmware-configs/sites: requests per round with our block
   planner versus one request per tag.
3. Recovery: the server process is killed and restarted 5 times; seconds from the server
   listening again to the first good sample (backoff included), median and max.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.config import DeviceConfig, PlcConfig, load_config, load_tag_map  # noqa: E402
from agent.demo.run import free_port  # noqa: E402
from agent.sources.blocks import naive_requests, plan_blocks  # noqa: E402
from agent.sources.modbus import ModbusHub  # noqa: E402
from agent.types import Quality, Sample  # noqa: E402

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def main(port, registers):
        values = [(i * 7919) & 0xFFFF for i in range(registers)]
        device = SimDevice(id=1, simdata=[SimData(0, values=values, datatype=DataType.REGISTERS)])
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        print("listening", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
    """
)


def start_server(port: int, registers: int) -> subprocess.Popen[str]:
    """A pymodbus server in its own process, ready when this returns."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(registers)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
    return proc


def float_tag_map(path: Path, tags: int) -> Path:
    """A tag map of `tags` contiguous float32 registers."""
    path.write_text(
        "".join(
            f'[[tag]]\nname = "t{i}"\naddress = {2 * i}\ntype = "float32"\n' for i in range(tags)
        )
    )
    return path


def hub_for(port: int, tag_map: Path, interval: float) -> ModbusHub:
    """A one-device TCP hub."""
    device = DeviceConfig("bench", 1, interval, load_tag_map(tag_map), 8, 125, 2000)
    return ModbusHub(
        PlcConfig(
            name="bench",
            protocol="modbus-tcp",
            host="127.0.0.1",
            port=port,
            serial=None,
            timeout_s=min(0.5, interval / 2),
            max_backoff_s=2.0,
            poll_interval_s=interval,
            devices=(device,),
        )
    )


async def throughput(tags: int, hz: float, seconds: float, work: Path) -> list[tuple[str, str]]:
    """Poll `tags` float32 tags at `hz` for `seconds`; requests, samples and CPU."""
    port = free_port()
    server = start_server(port, 2 * tags)
    hub = hub_for(port, float_tag_map(work / "tags.toml", tags), 1.0 / hz)
    samples: list[Sample] = []
    task = asyncio.create_task(hub.run(samples.append))
    await asyncio.sleep(1.0)  # connect and settle
    samples.clear()
    requests0, cpu0, wall0 = hub.stats.requests, os.times(), time.monotonic()
    await asyncio.sleep(seconds)
    requests1, cpu1, wall1 = hub.stats.requests, os.times(), time.monotonic()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    server.kill()
    server.wait()
    wall = wall1 - wall0
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    good = sum(all(r.quality is Quality.GOOD for r in s.readings.values()) for s in samples)
    return [
        ("tags, rate", f"{tags} float32 tags at {hz:g} Hz for {wall:.1f} s"),
        ("requests per round (at most 125 registers each)", f"{len(hub.blocks)}"),
        ("requests/s", f"{(requests1 - requests0) / wall:.0f}"),
        ("samples/s (all tags good)", f"{good / wall:.1f} of {hz:g} asked"),
        ("hub CPU, % of one core", f"{100 * cpu / wall:.1f} %"),
        (
            "hub CPU per 1,000 tags at 10 Hz",
            f"{100 * cpu / wall * (1000 / tags) * (10 / hz):.1f} %",
        ),
        ("overruns (polls that missed their slot)", f"{hub.stats.overruns}"),
    ]


def batching() -> list[tuple[str, int, int]]:
    """Requests per round, planned versus one per tag, for every device of every site."""
    rows = []
    for site in sorted((REPO / "firmware-configs" / "sites").glob("*.toml")):
        config = load_config(site)
        for plc in config.plcs:
            for device in plc.devices:
                tags = device.tag_map.tags
                planned = plan_blocks(tags, device.max_gap, device.max_registers, device.max_bits)
                rows.append((f"{site.stem}: {plc.name}/{device.name}", naive_requests(tags),
                             len(planned)))  # fmt: skip
    return rows


async def recovery(work: Path, restarts: int = 5) -> list[float]:
    """Seconds from the server listening again to the hub's first good sample."""
    port = free_port()
    hub = hub_for(port, float_tag_map(work / "small.toml", 20), 0.1)
    samples: list[Sample] = []
    server = start_server(port, 40)
    task = asyncio.create_task(hub.run(samples.append))
    times = []
    try:
        for _ in range(restarts):
            await asyncio.sleep(1.0)
            server.send_signal(signal.SIGKILL)
            server.wait()
            await asyncio.sleep(2.0)  # the PLC is away for 2 s
            server = start_server(port, 40)
            back = time.monotonic()
            while not (samples and samples[-1].readings["t0"].quality is Quality.GOOD):
                await asyncio.sleep(0.005)
            times.append(time.monotonic() - back)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.kill()
        server.wait()
    return times


async def main() -> None:
    """Print the three tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the hub logs every outage; the table says enough
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    work = Path(tempfile.mkdtemp())
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print("\n1. throughput over Modbus TCP (pymodbus server in another process)")
    for name, value in await throughput(args.tags, args.hz, args.seconds, work):
        print(f"   {name:<44} {value}")
    print("\n2. requests per poll round: one per tag vs our blocks")
    for name, naive, planned in batching():
        saved = 100 * (1 - planned / naive) if naive else 0.0
        print(f"   {name:<52} {naive:>4} -> {planned:>3}  ({saved:.0f} % fewer)")
    print("\n3. recovery after a PLC restart (killed, away 2 s, restarted; 5 times)")
    times = await recovery(work)
    print(
        f"   server listening -> first good sample: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s  ({', '.join(f'{t:.2f}' for t in times)})"
    )


if __name__ == "__main__":
    asyncio.run(main())
