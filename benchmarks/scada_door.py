"""The agent's poll rate with an idle SCADA port, then with a hostile client holding the caps.

    python benchmarks/scada_door.py [--seconds 20] [--speedup 20]

A child process runs the agent (the example site in commissioning mode, no model) against the
simulated extruder PLC over Modbus TCP, `speedup` times real time. This process is a
monitoring client (a trusted viewer that reads `Plcs/extruder-plc/Polls` and
`Agent/SamplesProcessed` at the start and end of each window) and, in the second window, the
hostile side, all on loopback:

- one viewer session with a trusted certificate holding every subscription one session may
  (`max_subscriptions_per_session`, publishing every 10 ms) and every monitored item
  (`max_monitored_items_per_session`, sampling as fast as asked, queue 1,000), after one
  refused try past each cap;
- idle TCP sockets filling the connection slots, reopened as the door closes them;
- password logins over the unencrypted channel, five a second (each refused before any check).

Printed, per window: polls/s and samples/s of the agent, its CPU as a share of one core, its
resident memory, and what the hostile side holds or was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PLC = "extruder-plc"
LINE = "extruder-1"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def serve(args: argparse.Namespace) -> None:
    """Child: the simulated PLC and the agent in commissioning mode, until stdin closes."""
    import logging

    from agent.config.learning import LearningConfig
    from agent.demo.simulator.plc import SimulatedPlc
    from agent.demo.simulator.process import ExtrusionLine
    from agent.runtime.app import Agent
    from tests.helpers import site_config

    logging.basicConfig(level=logging.CRITICAL)  # refusals are expected here
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    tmp = Path(args.tmp)
    config = site_config(tmp / "no-bundle", tmp, args.plc_port, args.opcua_port, args.speedup)
    learning = LearningConfig(period_s=3600.0, min_rows=40, max_rows=100_000)
    config = dataclasses.replace(config, bundle=None, learning=learning)
    plc = SimulatedPlc(ExtrusionLine(seed=1), port=args.plc_port, period_s=1.0 / args.speedup)
    await plc.start()
    plc_task = asyncio.create_task(plc.run())
    agent = Agent(config)
    ready = asyncio.Event()
    run = asyncio.create_task(agent.run(ready))
    await asyncio.wait_for(ready.wait(), 30)
    limits = config.opcua.limits
    print(json.dumps({"endpoint": config.opcua.endpoint, "trusted": str(config.opcua.trusted_path),
                      "subs": limits.max_subscriptions_per_session,
                      "items": limits.max_monitored_items_per_session,
                      "connections": limits.max_connections}), flush=True)  # fmt: skip
    await asyncio.to_thread(sys.stdin.readline)
    run.cancel()
    plc_task.cancel()
    await asyncio.gather(run, plc_task, return_exceptions=True)


class Quiet:
    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        pass


async def connect(endpoint: str, folder: Path, name: str, trusted: Path) -> Any:
    """A trusted SignAndEncrypt client logged in as the example site's `viewer`."""
    import shutil

    from tests.helpers import SCADA_PASSWORD
    from tests.scada_helpers import client_certificate, secure_client

    cert, key, uri = client_certificate(folder, name)
    shutil.copy(cert, trusted / cert.name)
    client = await secure_client(endpoint, cert, key, uri, "viewer", SCADA_PASSWORD)
    await client.connect()
    return client


async def counts(client: Any) -> tuple[int, int]:
    """Plcs/<plc>/Polls and Agent/SamplesProcessed now."""
    ns = await client.get_namespace_index("urn:lineside")
    polls = await client.get_node(f"ns={ns};s=Plcs/{PLC}/Polls").read_value()
    samples = await client.get_node(f"ns={ns};s=Agent/SamplesProcessed").read_value()
    return int(polls), int(samples)


async def window(monitor: Any, pid: int, seconds: float) -> dict[str, float]:
    """The agent's rates over one window."""
    polls0, samples0 = await counts(monitor)
    cpu0, t0 = cpu_s(pid), time.monotonic()
    await asyncio.sleep(seconds)
    polls1, samples1 = await counts(monitor)
    elapsed = time.monotonic() - t0
    return {
        "polls/s": (polls1 - polls0) / elapsed,
        "samples/s": (samples1 - samples0) / elapsed,
        "cpu": (cpu_s(pid) - cpu0) / elapsed,
        "rss": rss_mb(pid),
    }


async def hold_caps(client: Any, caps: dict[str, int], held: dict[str, Any]) -> None:
    """Take every subscription and monitored item one session may, and try one more of each."""
    from asyncua.ua.uaerrors import UaError

    ns = await client.get_namespace_index("urn:lineside")
    signals = await client.get_node(f"ns={ns};s=Lines/{LINE}/Signals").get_children()
    nodes = [n for s in signals for n in await s.get_children()]
    subs = [await client.create_subscription(10, Quiet()) for _ in range(caps["subs"])]
    try:
        await client.create_subscription(10, Quiet())
    except UaError as exc:
        held["refused"].append(type(exc).__name__)
    share = caps["items"] // len(subs)
    for sub in subs:
        targets = [nodes[i % len(nodes)] for i in range(share)]
        results = await sub.subscribe_data_change(targets, queuesize=1000, sampling_interval=0)
        held["items"] += sum(isinstance(r, int) for r in results)
    results = await subs[0].subscribe_data_change([nodes[0]], queuesize=1000)
    if not isinstance(results[0], int):
        held["refused"].append(results[0].name)
    held["subs"] = len(subs)


async def idle_sockets(port: int, count: int, held: dict[str, Any]) -> None:
    """Keep `count` idle TCP connections open, reopening those the server closes."""
    socks: list[socket.socket] = []
    try:
        while True:
            alive = []
            for sock in socks:
                try:
                    gone = sock.recv(1) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                (sock.close() if gone else alive.append(sock))
            socks = alive
            while len(socks) < count:
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setblocking(False)
                socks.append(sock)
                held["opened"] += 1
            await asyncio.sleep(0.2)
    finally:
        for sock in socks:
            sock.close()


async def unencrypted_logins(endpoint: str, held: dict[str, Any]) -> None:
    """Password logins over the unencrypted channel, five a second."""
    from asyncua import Client, ua
    from asyncua.ua.uaerrors import UaError

    while True:
        raw = Client(endpoint, timeout=5)
        try:
            await raw.connect_socket()
            await raw.send_hello()
            await raw.open_secure_channel()
            params = ua.CreateSessionParameters()
            params.ClientDescription = ua.ApplicationDescription(ApplicationUri="urn:hostile")
            params.EndpointUrl, params.SessionName = endpoint, "hostile"
            params.RequestedSessionTimeout, params.ClientNonce = 60_000, os.urandom(32)
            await raw.uaclient.create_session(params)
            token = ua.UserNameIdentityToken(UserName="viewer", Password=b"guess")
            await raw.uaclient.activate_session(ua.ActivateSessionParameters(
                UserIdentityToken=token))  # fmt: skip
        except (UaError, OSError, TimeoutError) as exc:
            held["logins refused"] += "BadSecurityPolicyRejected" in repr(exc)
        finally:
            raw.disconnect_socket()
        await asyncio.sleep(0.2)


async def drive(args: argparse.Namespace) -> None:
    """Parent: measure the idle window, then the hostile one, and print the table."""
    import logging

    from tests.helpers import free_port

    logging.basicConfig(level=logging.CRITICAL)  # the refusals are the point, not news

    tmp = Path(tempfile.mkdtemp(prefix="scada-door-"))
    plc_port, opcua_port = free_port(), free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--tmp", str(tmp), "--plc-port", str(plc_port),
         "--opcua-port", str(opcua_port), "--speedup", str(args.speedup)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    info = json.loads(child.stdout.readline())
    trusted = Path(info["trusted"])
    monitor = await connect(info["endpoint"], tmp / "monitor", "monitor", trusted)
    await asyncio.sleep(args.warmup)
    rows = [("idle server", await window(monitor, child.pid, args.seconds), "-")]

    held: dict[str, Any] = {"items": 0, "subs": 0, "refused": [], "opened": 0,
                            "logins refused": 0}  # fmt: skip
    hostile = await connect(info["endpoint"], tmp / "hostile", "hostile", trusted)
    await hold_caps(hostile, info, held)
    tasks = [
        asyncio.create_task(idle_sockets(opcua_port, info["connections"], held)),
        asyncio.create_task(unencrypted_logins(info["endpoint"], held)),
    ]
    await asyncio.sleep(args.warmup)
    opened0, logins0 = held["opened"], held["logins refused"]
    measured = await window(monitor, child.pid, args.seconds)
    summary = (
        f"{held['subs']} subscriptions, {held['items']} items (refused past the caps: "
        f"{', '.join(held['refused']) or 'nothing'}); {held['opened'] - opened0} idle sockets "
        f"opened, {held['logins refused'] - logins0} unencrypted logins refused"
    )
    rows.append(("hostile client at the caps", measured, summary))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in (hostile, monitor):
        await client.disconnect()
    child.stdin.close()
    child.wait(timeout=30)

    print(f"\nagent polls at {args.speedup:g}x ({args.seconds:g} s windows, nominal "
          f"{args.speedup:g} polls/s)\n")  # fmt: skip
    print(f"| {'SCADA port':<27} | polls/s | samples/s | agent CPU (cores) | agent RSS MB |")
    print(f"|{'-' * 29}|---------|-----------|-------------------|--------------|")
    for name, m, _ in rows:
        print(f"| {name:<27} | {m['polls/s']:7.2f} | {m['samples/s']:9.2f} | "
              f"{m['cpu']:17.2f} | {m['rss']:12.1f} |")  # fmt: skip
    idle, loaded = rows[0][1], rows[1][1]
    print(f"\npoll rate under attack: {100 * loaded['polls/s'] / idle['polls/s']:.0f}% of idle")
    print(f"hostile side: {rows[1][2]}")


def main() -> None:
    """Parse the arguments and run the parent or the child side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--speedup", type=float, default=20.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    parser.add_argument("--plc-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--opcua-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve(args) if args.serve else drive(args))


if __name__ == "__main__":
    main()
