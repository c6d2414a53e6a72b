"""SCADA server under load: N signals at R Hz, one client subscribed to every Value.

    python benchmarks/opcua_server.py [--signals 2000] [--rate 10] [--seconds 20]
                                      [--security secure|none] [--publish-ms 100]

The server (ScadaServer, the agent's own publish path) runs in a child process, fed by a
loop that offers a full line result R times a second, as the detection loop does. This
process is the SCADA client: SignAndEncrypt (Basic256Sha256) with a trusted certificate and
a viewer user unless --security none. Printed, for the measurement window after warm-up:

- value changes offered and published per second (a publish that falls behind coalesces);
- notifications received per second by the client;
- CPU of the server process, as a share of one core; the client's too;
- update-to-notification latency: from the moment the result was offered (its source
  timestamp) to the client's callback, median and p99;
- the event-loop lag of the server process (how late a 10 ms timer fires), median and p99:
  what the detection loop, sharing that loop, would feel;
- queue growth: notifications waiting in the server's subscription queues and unacknowledged
  publish results, at the start and end of the window, and the results coalesced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_seconds() -> float:
    """User + system CPU of this process so far."""
    t = os.times()
    return t.user + t.system


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def queued(server: Any) -> tuple[int, int]:
    """Notifications queued in subscriptions, and unacknowledged publish results."""
    waiting = unacked = 0
    for sub in server.iserver.subscription_service.subscriptions.values():
        waiting += sum(len(q) for q in getattr(sub, "_triggered_datachanges", {}).values())
        unacked += len(getattr(sub, "_not_acknowledged_results", {}))
    return waiting, unacked


async def serve(args: argparse.Namespace) -> None:
    """Child process: the SCADA server and a feeder offering line results at the rate."""
    import logging

    from agent.config import NodeTag
    from agent.core.codec import Scaling
    from agent.pipeline.line import LineResult
    from agent.sinks.scada import ScadaServer
    from agent.types import TagReading
    from tests.scada_helpers import scada_config, trust

    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
    tmp = Path(args.tmp)
    changes: dict[str, Any] = {"allow_anonymous": True}
    if args.security == "none":
        changes.update(security="none", users=())
    config = scada_config(tmp, args.port, **changes)
    if args.security != "none":
        trust(config, Path(args.client_cert))
    tags = [
        NodeTag(f"s{i:04d}", f"ns=1;s=s{i}", Scaling(), "bar", f"Signal {i}")
        for i in range(args.signals)
    ]
    server = ScadaServer(config, "bench", tags, [], "1", threshold=1.0)
    await server.start()
    publisher = asyncio.create_task(server.run())
    print("READY", flush=True)
    lags: list[float] = []
    offered = 0

    async def feed() -> None:
        nonlocal offered
        period, k = 1.0 / args.rate, 0
        next_at = time.monotonic()
        while True:
            k += 1
            now = time.time()
            readings = {t.name: TagReading(float(k) + i * 1e-3) for i, t in enumerate(tags)}
            server.offer(LineResult(now, readings, {}, {}, {}, ()))
            offered += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def tick() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - t0 - 0.01) * 1e3)

    feeder, ticker = asyncio.create_task(feed()), asyncio.create_task(tick())
    await asyncio.to_thread(sys.stdin.readline)
    lags.clear()
    start_q, cpu0, wall0 = queued(server.server), cpu_seconds(), time.monotonic()
    offered0, coalesced0 = offered, server.coalesced
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    await asyncio.sleep(args.seconds)
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    wall, cpu = time.monotonic() - wall0, cpu_seconds() - cpu0
    stats = {
        "cpu_share": cpu / wall,
        "offered_per_s": (offered - offered0) / wall,
        "published_per_s": (offered - offered0 - (server.coalesced - coalesced0)) / wall,
        "coalesced": server.coalesced - coalesced0,
        "queued_start": start_q,
        "queued_end": queued(server.server),
        "lag_median_ms": statistics.median(lags),
        "lag_p99_ms": pct(lags, 0.99),
    }
    print(json.dumps(stats), flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the client disconnects first
    for task in (feeder, ticker, publisher):
        task.cancel()
    await server.stop()


class Collector:
    """Subscription handler: counts notifications and their latency from the source time."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.count = 0
        self.recording = False
        self.status_changes: list[str] = []

    def status_change_notification(self, status: Any) -> None:
        """Called by asyncua when the server reports a subscription status change."""
        self.status_changes.append(str(status))

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        """Called by asyncua for each value change."""
        if not self.recording:
            return
        self.count += 1
        source = data.monitored_item.Value.SourceTimestamp
        if source is not None:
            self.latencies.append((time.time() - source.timestamp()) * 1e3)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Parent process: start the server, subscribe to every Value, measure, report."""
    from asyncua import Client, ua

    from agent.demo.run import free_port
    from tests.scada_helpers import PASSWORDS, SecureClient, client_certificate

    tmp = Path(tempfile.mkdtemp(prefix="lineside-bench-"))
    cert, key, uri = client_certificate(tmp / "client", "bench")
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--role", "server", "--port", str(port), "--tmp", str(tmp),
         "--client-cert", str(cert), "--signals", str(args.signals), "--rate", str(args.rate),
         "--seconds", str(args.seconds), "--security", args.security,
         "--profile", args.profile],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    if child.stdout.readline().strip() != "READY":
        raise SystemExit("the server did not start")
    endpoint = f"opc.tcp://127.0.0.1:{port}/lineside"
    # asyncua's client declares the server lost when a 1 s liveness read is late; under this
    # load it can be, so the measuring client waits longer
    if args.security == "none":
        client: Client = Client(endpoint, timeout=30, watchdog_intervall=30)
    else:
        client = SecureClient(endpoint, "Basic256Sha256", cert, key,
                              ua.MessageSecurityMode.SignAndEncrypt, watchdog_s=30)  # fmt: skip
        client.application_uri = uri
        client.set_user("ada")
        client.set_password(PASSWORDS["ada"])
    collector = Collector()
    async with client:
        ns = await client.get_namespace_index("urn:lineside")
        nodes = [client.get_node(f"ns={ns};s=Lines/bench/Signals/s{i:04d}/Value")
                 for i in range(args.signals)]  # fmt: skip
        sub = await client.create_subscription(
            ua.CreateSubscriptionParameters(RequestedPublishingInterval=args.publish_ms,
                                            RequestedMaxKeepAliveCount=100,
                                            RequestedLifetimeCount=1000),
            collector,
        )  # fmt: skip
        for i in range(0, len(nodes), 500):
            await sub.subscribe_data_change(nodes[i : i + 500], sampling_interval=0, queuesize=1)
        await asyncio.sleep(args.warmup)
        collector.recording = True
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        child.stdin.write("go\n")
        child.stdin.flush()
        line = await asyncio.to_thread(child.stdout.readline)
        wall, cpu = time.monotonic() - wall0, cpu_seconds() - cpu0
        collector.recording = False
    child.stdin.write("stop\n")
    child.stdin.flush()
    child.wait(timeout=30)
    stats = json.loads(line)
    stats.update(
        client_cpu_share=cpu / wall,
        notifications_per_s=collector.count / wall,
        latency_median_ms=statistics.median(collector.latencies) if collector.latencies else None,
        latency_p99_ms=pct(collector.latencies, 0.99),
        status_changes=collector.status_changes,
    )
    return stats


def table(args: argparse.Namespace, s: dict[str, Any]) -> str:
    """The figures as a small text table."""
    n = args.signals
    rows = [
        ("signals x rate", f"{n} x {args.rate:g} Hz = {n * args.rate:,.0f} value changes/s"),
        ("security", "SignAndEncrypt, Basic256Sha256" if args.security != "none" else "none"),
        ("value changes offered /s", f"{s['offered_per_s'] * n:,.0f}"),
        ("value changes published /s", f"{s['published_per_s'] * n:,.0f}"),
        ("notifications received /s", f"{s['notifications_per_s']:,.0f}"),
        ("server CPU, share of one core", f"{s['cpu_share'] * 100:.1f} %"),
        ("client CPU, share of one core", f"{s['client_cpu_share'] * 100:.1f} %"),
        ("update -> notification, median", f"{s['latency_median_ms']:.1f} ms"),
        ("update -> notification, p99", f"{s['latency_p99_ms']:.1f} ms"),
        ("server loop lag, median / p99", f"{s['lag_median_ms']:.2f} / {s['lag_p99_ms']:.2f} ms"),
        ("results coalesced in window", f"{s['coalesced']}"),
        ("queued notif. / unacked, start", f"{s['queued_start'][0]} / {s['queued_start'][1]}"),
        ("queued notif. / unacked, end", f"{s['queued_end'][0]} / {s['queued_end'][1]}"),
        ("subscription status changes", ", ".join(s["status_changes"]) or "none"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> None:
    """Parse arguments; run as the measuring parent or as the server child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--publish-ms", type=float, default=100.0)
    parser.add_argument("--security", choices=["secure", "none"], default="secure")
    parser.add_argument("--role", choices=["client", "server"], default="client")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tmp", default="")
    parser.add_argument("--client-cert", default="")
    parser.add_argument(
        "--profile", default="", help="write a cProfile of the server's measurement window here"
    )
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(serve(args))
        return
    stats = asyncio.run(measure(args))
    print(table(args, stats))


if __name__ == "__main__":
    main()
