"""Plant scale: the real agent against N simulated PLCs x 100 tags at 10 Hz. Prints one table.

    python benchmarks/plant.py [--bundle .demo/bundle] [--sizes 1,5,10,20] [--seconds 10]
                               [--quick] [--baseline OTHER_CHECKOUT]

One simulator process serves 20 Modbus TCP PLCs on 20 ports (pymodbus), each 100 tags that
change on every 100 ms tick (float32 in all four byte orders, scaled int16/uint16, uint32);
the first PLC's first tags are the simulated extruder's, so the demo bundle's model runs on
them. For each size N, `lineside run` (a real process, a notify socket this script reads)
polls N of them at 10 Hz, and this process is the SCADA client: SignAndEncrypt with a trusted
certificate, one subscription (100 ms) with every `Signals/<tag>/Value` monitored. Measured
over the window after a warm-up:

- polls kept / asked: the agent's own `Plcs/<name>/Polls`, against N x 10 Hz x seconds;
- agent CPU: user+sys of the agent and its child processes, % of one core;
- latency sample -> client: the client's receive time minus the value's SourceTimestamp (the
  time of the poll that read it), median and p99;
- coalesced and dropped: `Agent/PublishCoalesced` and `Agent/SampleQueueDrops` in the window;
- RSS of the agent's processes at the end, and spawn -> READY=1.

The stack floors, in the same run, for the same N: bare pymodbus (one client per PLC reading
the same blocks at 10 Hz, nothing else) and bare asyncua (a plain server, SignAndEncrypt, the
same N x 100 variables written at 10 Hz, the same client subscribed), each in its own process.
With `--baseline`, the agent of another checkout (an older commit) runs beside ours on the same
PLCs, size by size, so the two are compared under the same load. The box is shared: read the
ratios to the floors and to the baseline, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TAGS_PER_PLC = 100
HZ = 10.0
WATCHDOG_S = 30.0  # the clients' keep-alive: a loaded box must not cut them off mid-window
REGISTERS = 256
EXTRUDER_TAGS = 10  # the simulated extruder's tag map: 9 signals and a heartbeat, below 64
SYNTH_BASE = 64  # the first PLC's own tags start above the extruder's registers
# (type, order, scale, count): 100 tags per PLC, 170 registers, read in two blocks
SYNTH_KINDS = [("float32", o, 1.0, 15) for o in ("ABCD", "CDAB", "BADC", "DCBA")] + [
    ("int16", "AB", 0.1, 20),
    ("uint16", "AB", 0.01, 10),
    ("uint32", "CDAB", 0.001, 10),
]
_NUMPY_WORDS = {"ABCD": (">", ">"), "CDAB": ("<", "<"), "BADC": (">", "<"), "DCBA": ("<", ">")}
_NUMPY_TYPE = {"float32": "f4", "int16": "i2", "uint16": "u2", "uint32": "u4"}


def synthetic_tags(plc: int) -> list[dict[str, Any]]:
    """The synthetic tags of PLC `plc` (0-based): name, address, type, order, scale."""
    count = TAGS_PER_PLC - (EXTRUDER_TAGS if plc == 0 else 0)
    address = SYNTH_BASE if plc == 0 else 0
    tags: list[dict[str, Any]] = []
    for dtype, order, scale, n in SYNTH_KINDS:
        for _ in range(n):
            if len(tags) == count:
                return tags
            name = f"p{plc + 1:02d}_t{len(tags):03d}"
            tags.append({"name": name, "address": address, "type": dtype, "order": order,
                         "scale": scale})  # fmt: skip
            address += 2 if dtype in ("float32", "uint32") else 1
    return tags


def encode_synthetic(tags: list[dict[str, Any]], values: np.ndarray, regs: np.ndarray) -> None:
    """Write `values` (engineering units) into the register image, tag by tag (numpy)."""
    for tag, value in zip(tags, values, strict=True):
        order = tag["order"] if tag["type"] in ("float32", "uint32") else "ABCD"
        value_end, word_end = _NUMPY_WORDS[order]
        raw = np.array([value / tag["scale"]]).astype(value_end + _NUMPY_TYPE[tag["type"]])
        words = raw.view(word_end + "u2")
        regs[tag["address"] : tag["address"] + len(words)] = words


# --- the simulator process: 20 PLCs on 20 ports ----------------------------------------------


async def serve_plant(ports: list[int]) -> None:
    """Serve one pymodbus TCP server per port; every tag changes every 1/HZ s."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType as SimDataType
    from pymodbus.simulator import SimData, SimDevice

    from agent.config import load_tag_map
    from agent.core.codec import encode
    from agent.demo.simulator.plc import default_tag_map
    from agent.demo.simulator.process import SIGNAL_NAMES, ExtrusionLine

    extruder = {t.name: t for t in load_tag_map(default_tag_map()).tags}
    line = ExtrusionLine(seed=3)
    servers = []
    for port in ports:
        device = SimDevice(id=1, simdata=[SimData(0, count=REGISTERS, values=0,
                                                  datatype=SimDataType.REGISTERS)])  # fmt: skip
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        servers.append(server)
    tags = [synthetic_tags(i) for i in range(len(ports))]
    rng = np.random.default_rng(0)
    print("listening", flush=True)
    loop = asyncio.get_running_loop()
    next_at, tick = loop.time(), 0
    while True:
        tick += 1
        for i, server in enumerate(servers):
            regs = np.zeros(REGISTERS, dtype=np.uint16)
            if i == 0:
                for name, value in zip(SIGNAL_NAMES, line.step(), strict=True):
                    tag = extruder[name]
                    words = encode(tag.scaling.to_raw(float(value), tag.dtype), tag.dtype,
                                   tag.layout)  # fmt: skip
                    regs[tag.address : tag.address + len(words)] = words
                regs[extruder["heartbeat"].address] = tick & 0xFFFF
            n = len(tags[i])
            values = 50.0 + 10.0 * np.sin(tick / 20.0 + np.arange(n)) + rng.normal(0, 0.5, n)
            encode_synthetic(tags[i], values, regs)
            await server.async_setValues(1, 3, 0, [int(r) for r in regs])
        next_at += 1.0 / HZ
        await asyncio.sleep(max(0.0, next_at - loop.time()))


# --- the site the agent runs -----------------------------------------------------------------


def write_tag_map(folder: Path, plc: int) -> Path:
    """The tag map of PLC `plc`: for the first, the extruder's tags and its own after them."""
    from agent.demo.simulator.plc import default_tag_map

    lines = [default_tag_map().read_text()] if plc == 0 else ['[device]\nvendor = "bench"\n']
    for tag in synthetic_tags(plc):
        lines.append(
            f'[[tag]]\nname = "{tag["name"]}"\naddress = {tag["address"]}\ntype = "{tag["type"]}"\n'
            f'order = "{tag["order"]}"\nscale = {tag["scale"]}\nunit = ""\nrole = "status"\n'
        )
    path = folder / f"plc-{plc + 1:02d}.toml"
    path.write_text("\n".join(lines))
    return path


def write_site(folder: Path, bundle: Path, ports: list[int], opcua_port: int) -> Path:
    """A site with one line, len(ports) PLCs polled at 10 Hz, the demo bundle's model."""
    text = (REPO / "firmware-configs/sites/demo-extruder.toml").read_text()
    head = text.split("[[plc]]")[0].split("[explain]")[0]
    head = head.replace('"../../.demo/bundle"', f'"{bundle.resolve()}"')
    head = head.replace('"../../.demo/events.sqlite"', f'"{folder / "events.sqlite"}"')
    head = head.replace("127.0.0.1:4840", f"127.0.0.1:{opcua_port}")
    parts = [head]
    for i, port in enumerate(ports):
        parts.append(
            f'[[plc]]\nname = "plc-{i + 1:02d}"\nprotocol = "modbus-tcp"\nhost = "127.0.0.1"\n'
            f"port = {port}\nunit = 1\npoll_interval_s = {1 / HZ}\ntimeout_s = 0.08\n"
            f'tag_map = "{write_tag_map(folder, i)}"\n'
        )
    parts.append('[explain]\nlanguage = "en"\nmode = "template"\ncatalogue = "demo-extruder"\n')
    path = folder / "site.toml"
    path.write_text("\n".join(parts))
    return path


# --- measuring processes ---------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes, MB."""
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def wait_port(port: int, timeout: float = 60.0) -> None:
    """Until something listens on `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def pct(values: list[float], q: float) -> float:
    """The q-quantile of values (NaN when empty)."""
    return float(np.percentile(values, q)) if values else float("nan")


async def bench_client(site: Path) -> Any:
    """The SCADA client of an agent run: trusted, SignAndEncrypt, anonymous, patient."""
    from asyncua import ua

    from agent.config import load_config
    from tests.scada_helpers import SecureClient, client_certificate, trust

    opcua = load_config(site).opcua
    cert, key, uri = client_certificate(site.parent / "client", "bench")
    trust(opcua, cert)
    client = SecureClient(opcua.endpoint, "Basic256Sha256", cert, key,
                          ua.MessageSecurityMode.SignAndEncrypt, watchdog_s=WATCHDOG_S)  # fmt: skip
    client.application_uri = uri
    return client


class Latencies:
    """A subscription handler keeping receive time minus SourceTimestamp, ms."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.counting = False

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        """Called by asyncua for every data change."""
        if self.counting:
            source = data.monitored_item.Value.SourceTimestamp
            if source is not None:
                self.ms.append((time.time() - source.replace(tzinfo=dt.UTC).timestamp()) * 1e3)


async def subscribe_all(client: Any, nodes: list[Any], handler: Latencies) -> Any:
    """One 100 ms subscription monitoring every node's Value."""
    subscription = await client.create_subscription(100, handler)
    for i in range(0, len(nodes), 500):
        await subscription.subscribe_data_change(nodes[i : i + 500], queuesize=1)
    return subscription


# --- one agent run ---------------------------------------------------------------------------


async def measure_agent(
    site: Path, pid: int, plcs: int, seconds: float, subscribe: bool = True
) -> dict[str, float]:
    """Subscribe to every Value of the line (or to none), then measure the window."""
    pids = process_tree(pid)
    client = await bench_client(site)
    async with client:
        ns = await client.get_namespace_index("urn:lineside")
        node = lambda path: client.get_node(f"ns={ns};s={path}")  # noqa: E731
        tags = [t["name"] for i in range(plcs) for t in synthetic_tags(i)]
        tags += ["screw_speed", "throughput", "motor_current", "barrel_temp", "melt_temp",
                 "melt_pressure", "vibration_rms", "cooling_water_temp", "line_speed",
                 "heartbeat"]  # fmt: skip
        handler = Latencies()
        if subscribe:
            values = [node(f"Lines/extruder-1/Signals/{t}/Value") for t in tags]
            await subscribe_all(client, values, handler)
        await asyncio.sleep(3.0)  # warm-up: the initial values, the subscription settling

        async def counters() -> list[int]:
            polls = [node(f"Plcs/plc-{i + 1:02d}/Polls") for i in range(plcs)]
            agent = [node("Agent/PublishCoalesced"), node("Agent/SampleQueueDrops")]
            return [int(await n.read_value()) for n in polls + agent]

        before, cpu0, t0 = await counters(), cpu_s(pids), time.monotonic()
        handler.counting = True
        await asyncio.sleep(seconds)
        handler.counting = False
        after, cpu1, t1 = await counters(), cpu_s(pids), time.monotonic()
        wall = t1 - t0
        polls = sum(after[:plcs]) - sum(before[:plcs])
        return {
            "kept": polls / (plcs * HZ * wall),
            "cpu": 100 * (cpu1 - cpu0) / wall,
            "lat_med": pct(handler.ms, 50),
            "lat_p99": pct(handler.ms, 99),
            "changes": len(handler.ms) / wall,
            "coalesced": after[plcs] - before[plcs],
            "dropped": after[plcs + 1] - before[plcs + 1],
            "rss": rss_mb(process_tree(pid)),
        }


def run_agent(
    bundle: Path, ports: list[int], seconds: float, tree: Path = REPO, subscribe: bool = True
) -> dict[str, float]:
    """Spawn `lineside run` (the code in `tree`) on a site of these PLCs; READY, then the
    measured window."""
    folder = Path(tempfile.mkdtemp(prefix="lineside-plant-"))
    opcua_port = free_port()
    site = write_site(folder, bundle, ports, opcua_port)
    address = f"@lineside-plant-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:])
    started = time.monotonic()
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(site), "--log-level", "warning"],
        cwd=tree, env={**os.environ, "NOTIFY_SOCKET": address, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        sock.settimeout(1.0)
        while True:  # READY=1, or the agent's exit said at once rather than after the timeout
            try:
                if b"READY=1" in sock.recv(4096):
                    break
            except TimeoutError:
                if agent.poll() is not None:
                    raise RuntimeError(
                        f"the agent exited ({agent.returncode}) before READY: run `python -m "
                        f"agent check-config {site}` for why"
                    ) from None
                if time.monotonic() - started > 120:
                    raise
        ready = time.monotonic() - started
        result = asyncio.run(measure_agent(site, agent.pid, len(ports), seconds, subscribe))
        result["ready"] = ready
        return result
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        sock.close()


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the floors ------------------------------------------------------------------------------


async def bare_reads(ports: list[int], seconds: float) -> None:
    """Child: one pymodbus client per PLC reading its two blocks at 10 Hz; prints polls."""
    from pymodbus.client import AsyncModbusTcpClient

    clients = [AsyncModbusTcpClient("127.0.0.1", port=p) for p in ports]
    for c in clients:
        await c.connect()
    polls = [0]

    async def poll(client: Any) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await client.read_holding_registers(0, count=125, device_id=1)
            await client.read_holding_registers(125, count=45, device_id=1)
            polls[0] += 1
            next_at = max(next_at + 1 / HZ, loop.time())
            await asyncio.sleep(next_at - loop.time())

    tasks = [asyncio.create_task(poll(c)) for c in clients]
    await asyncio.sleep(2.0)
    start, cpu0, t0 = polls[0], cpu_s([os.getpid()]), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    kept = (polls[0] - start) / (len(ports) * HZ * wall)
    print(json.dumps({"kept": kept, "cpu": 100 * (cpu_s([os.getpid()]) - cpu0) / wall}))
    for t in tasks:
        t.cancel()


async def bare_server(port: int, variables: int, pki: Path, trusted: Path) -> None:
    """Child: a plain asyncua server, SignAndEncrypt, writing every variable at 10 Hz."""
    from asyncua import Server, ua
    from asyncua.crypto.permission_rules import SimpleRoleRuleset
    from asyncua.crypto.truststore import TrustStore
    from asyncua.crypto.validator import CertificateValidator

    from agent.config.opcua import OpcUaConfig
    from agent.sinks.scada.pki import ensure_server_certificate

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bare")
    config = OpcUaConfig(endpoint=f"opc.tcp://127.0.0.1:{port}/bare", pki_dir=pki)
    cert, key = ensure_server_certificate(config, server.get_application_uri())
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt],
                               permission_ruleset=SimpleRoleRuleset())  # fmt: skip
    store = TrustStore([trusted], [])
    await store.load()
    server.set_certificate_validator(CertificateValidator(trust_store=store))
    ns = await server.register_namespace("urn:bare")
    folder = await server.nodes.objects.add_folder(ns, "Bare")
    nodes = [await folder.add_variable(ua.NodeId(f"v{i}", ns), f"v{i}", 0.0)
             for i in range(variables)]  # fmt: skip
    await server.start()
    print("listening", flush=True)
    aspace = server.iserver.aspace
    loop = asyncio.get_running_loop()
    next_at, tick = loop.time(), 0
    while True:
        tick += 1
        now = dt.datetime.now(dt.UTC)
        for i, n in enumerate(nodes):
            dv = ua.DataValue(ua.Variant(float(tick + i), ua.VariantType.Double),
                              SourceTimestamp=now, ServerTimestamp=now)  # fmt: skip
            await aspace.write_attribute_value(n.nodeid, ua.AttributeIds.Value, dv)
        next_at = max(next_at + 1 / HZ, loop.time())
        await asyncio.sleep(next_at - loop.time())


def floor_reads(ports: list[int], seconds: float) -> dict[str, float]:
    """Bare pymodbus reads of these PLCs in a child process."""
    out = subprocess.run(
        [sys.executable, __file__, "--bare-reads", ",".join(map(str, ports)),
         "--seconds", str(seconds)],
        cwd=REPO, capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


async def measure_bare_server(port: int, pid: int, variables: int, cert: Path, key: Path,
                              seconds: float) -> dict[str, float]:  # fmt: skip
    """Subscribe to every variable of the bare server and measure the window."""
    from asyncua import ua

    from tests.scada_helpers import SecureClient

    client = SecureClient(f"opc.tcp://127.0.0.1:{port}/bare", "Basic256Sha256", cert, key,
                          ua.MessageSecurityMode.SignAndEncrypt, watchdog_s=WATCHDOG_S)  # fmt: skip
    client.application_uri = "urn:test:bench"
    async with client:
        ns = await client.get_namespace_index("urn:bare")
        handler = Latencies()
        nodes = [client.get_node(ua.NodeId(f"v{i}", ns)) for i in range(variables)]
        await subscribe_all(client, nodes, handler)
        await asyncio.sleep(3.0)
        cpu0, t0 = cpu_s([pid]), time.monotonic()
        handler.counting = True
        await asyncio.sleep(seconds)
        handler.counting = False
        wall = time.monotonic() - t0
        return {"cpu": 100 * (cpu_s([pid]) - cpu0) / wall, "lat_med": pct(handler.ms, 50),
                "lat_p99": pct(handler.ms, 99), "changes": len(handler.ms) / wall}  # fmt: skip


def floor_server(variables: int, seconds: float) -> dict[str, float]:
    """Bare asyncua publishing of `variables` values at 10 Hz to one subscribed client."""
    from tests.scada_helpers import client_certificate

    folder = Path(tempfile.mkdtemp(prefix="lineside-bare-"))
    cert, key, _ = client_certificate(folder / "client", "bench")
    trusted = folder / "trusted"
    trusted.mkdir()
    (trusted / cert.name).write_bytes(cert.read_bytes())
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", str(port), "--variables", str(variables),
         "--pki", str(folder / "pki"), "--trusted", str(trusted)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return asyncio.run(measure_bare_server(port, proc.pid, variables, cert, key, seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- decode cost, in-process ----------------------------------------------------------------


def decode_cost(folder: Path, rounds: int = 2000) -> tuple[float, float]:
    """Median microseconds to decode one PLC's 100 tags: tag by tag, and block by block."""
    from agent.config import load_tag_map
    from agent.sources.blocks import plan_blocks
    from agent.sources.decoding import BlockReadings
    from agent.sources.modbus import decode_tag

    tags = load_tag_map(write_tag_map(folder, 1)).tags
    blocks = plan_blocks(tags)
    readers = [BlockReadings(b) for b in blocks]
    rng = np.random.default_rng(1)
    words = [rng.integers(0, 65536, b.count).tolist() for b in blocks]
    scalar, vector = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        for b, w in zip(blocks, words, strict=True):
            {tag.name: decode_tag(tag, w, b.start) for tag in b.tags}
        scalar.append(time.perf_counter() - t)
        t = time.perf_counter()
        for r, w in zip(readers, words, strict=True):
            r.readings(w)
        vector.append(time.perf_counter() - t)
    return 1e6 * float(np.median(scalar)), 1e6 * float(np.median(vector))


# --- the table -------------------------------------------------------------------------------


def main() -> None:
    """Run every size and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", help="default: the demo's, built when absent")
    parser.add_argument("--sizes", default="1,5,10,20")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="sizes 1 and 20, 5 s windows")
    parser.add_argument("--baseline", help="another checkout whose agent runs beside, same PLCs")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--bare-reads", help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--variables", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pki", help=argparse.SUPPRESS)
    parser.add_argument("--trusted", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if args.serve:
        asyncio.run(serve_plant([int(p) for p in args.serve.split(",")]))
        return
    if args.bare_reads:
        asyncio.run(bare_reads([int(p) for p in args.bare_reads.split(",")], args.seconds))
        return
    if args.bare_server:
        asyncio.run(bare_server(args.bare_server, args.variables, Path(args.pki),
                                Path(args.trusted)))  # fmt: skip
        return
    sizes = [1, 20] if args.quick else [int(s) for s in args.sizes.split(",")]
    seconds = 5.0 if args.quick else args.seconds
    # The demo bundle (`make demo` leaves it in .demo/), built through the export path
    # when absent, so `make bench` runs from a clean clone.
    from agent.demo.run import ensure_bundle

    bundle = Path(args.bundle) if args.bundle else ensure_bundle(REPO / ".demo", sys.stderr)
    ports = [free_port() for _ in range(max(sizes))]
    sim = subprocess.Popen(
        [sys.executable, __file__, "--serve", ",".join(map(str, ports))],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout is not None
        sim.stdout.readline()
        for port in ports:
            wait_port(port)
        load = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} CPUs, load {load:.1f} at start; "
              f"{TAGS_PER_PLC} tags per PLC at {HZ:g} Hz, {seconds:g} s windows")  # fmt: skip
        scalar, vector = decode_cost(Path(tempfile.mkdtemp(prefix="lineside-decode-")))
        print(f"decode of one PLC's {TAGS_PER_PLC} tags (2 blocks, quality judged): tag by tag "
              f"{scalar:.0f} us, block by block (numpy) {vector:.0f} us, "
              f"{scalar / vector:.1f}x")  # fmt: skip
        head = (f"{'PLCs':>4} {'what':<14} {'polls kept':>10} {'CPU %':>6} {'lat med':>8} "
                f"{'lat p99':>8} {'changes/s':>9} {'coalesced':>9} {'dropped':>7} "
                f"{'RSS MB':>6} {'READY s':>7}")  # fmt: skip
        print(head)
        trees = [("agent", REPO)] + ([("baseline", Path(args.baseline))] if args.baseline else [])
        for n in sizes:
            for what, tree in trees:
                a = run_agent(bundle, ports[:n], seconds, tree)
                print(f"{n:>4} {what:<14} {a['kept']:>10.1%} {a['cpu']:>6.0f} "
                      f"{a['lat_med']:>8.0f} {a['lat_p99']:>8.0f} {a['changes']:>9.0f} "
                      f"{a['coalesced']:>9.0f} {a['dropped']:>7.0f} {a['rss']:>6.0f} "
                      f"{a['ready']:>7.2f}", flush=True)  # fmt: skip
            if n == max(sizes):  # the collection path alone: no client subscribed
                a = run_agent(bundle, ports[:n], seconds, subscribe=False)
                print(f"{n:>4} {'agent, no sub.':<14} {a['kept']:>10.1%} {a['cpu']:>6.0f} "
                      f"{'':>8} {'':>8} {'':>9} {a['coalesced']:>9.0f} {a['dropped']:>7.0f} "
                      f"{a['rss']:>6.0f} {a['ready']:>7.2f}", flush=True)  # fmt: skip
            r = floor_reads(ports[:n], seconds)
            print(f"{n:>4} {'bare pymodbus':<14} {r['kept']:>10.1%} {r['cpu']:>6.0f}", flush=True)
            s = floor_server(n * TAGS_PER_PLC, seconds)
            print(f"{n:>4} {'bare asyncua':<14} {'':>10} {s['cpu']:>6.0f} {s['lat_med']:>8.0f} "
                  f"{s['lat_p99']:>8.0f} {s['changes']:>9.0f}", flush=True)  # fmt: skip
        print(f"load {os.getloadavg()[0]:.1f} at the end; latency in ms; CPU in % of one core")
    finally:
        sim.terminate()
        sim.wait(timeout=30)


if __name__ == "__main__":
    main()
