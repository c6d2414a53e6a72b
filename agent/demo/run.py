"""`lineside demo`: the simulated line, the real agent, each fault once, and a summary.

Everything runs in one process over real loopback sockets: the simulator is a pymodbus TCP
server, the agent polls it with its Modbus hub, and serves its OPC-UA server on a free port.
Only the bundle is built in a child process (`python -m export train`), so the agent side of
this process never imports torch.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import logging
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from agent.bundles.bundle import load_bundle
from agent.config import OpcUaConfig, SiteConfig, load_config
from agent.config.opcua import ScadaUser
from agent.config.passwords import hash_password, parse_hash
from agent.config.web import WebConfig
from agent.demo.schedule import DemoScore, FaultRecord, plan
from agent.demo.simulator.plc import SimulatedPlc, default_tag_map
from agent.demo.simulator.process import SIGNAL_NAMES, ExtrusionLine, historian
from agent.demo.view import LiveView
from agent.errors import BundleError
from agent.paths import firmware_configs
from agent.pipeline.line import LineResult
from agent.runtime.app import Agent
from agent.types import EventState

log = logging.getLogger(__name__)

DEMO_OPCUA_PORT = 4840
DEMO_USER = "viewer"
HISTORIAN_ROWS = 7200  # two hours of normal operation at 1 Hz
HISTORIAN_SEED = 11
DEMO_SEED = 2024


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_opcua_port() -> int:
    """4840 when it is free on loopback, else some free port (the demo says which)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", DEMO_OPCUA_PORT))
        except OSError:
            return free_port()
    return DEMO_OPCUA_PORT


def demo_opcua(state: Path, port: int, password: str) -> OpcUaConfig:
    """The demo's SCADA server: SignAndEncrypt only, one `viewer` user, PKI in the state dir."""
    return OpcUaConfig(
        endpoint=f"opc.tcp://127.0.0.1:{port}/lineside",
        namespace="urn:lineside",
        security="secure",
        security_modes=("SignAndEncrypt",),
        users=(ScadaUser(DEMO_USER, "viewer", parse_hash(hash_password(password))),),
        pki_dir=state / "opcua-pki",
    )


def write_historian(path: Path, rows: int = HISTORIAN_ROWS, seed: int = HISTORIAN_SEED) -> None:
    """Write a historian CSV of normal operation (timestamp + one column per signal)."""
    data = historian(rows, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = 1_767_225_600  # 2026-01-01T00:00:00Z: a fixed, plausible historian start
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", *SIGNAL_NAMES])
        for i, row in enumerate(data):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + i))
            writer.writerow([stamp, *(f"{v:.4f}" for v in row)])


def ensure_bundle(state: Path, out: TextIO) -> Path:
    """The demo bundle, built through the export path if it is absent or does not verify."""
    bundle = state / "bundle"
    try:
        load_bundle(bundle)
        return bundle
    except BundleError:
        pass
    csv_path = state / "historian.csv"
    print(f"Building the demo model: historian {csv_path} -> bundle {bundle}", file=out)
    write_historian(csv_path)
    command = [
        sys.executable,
        "-m",
        "export",
        "train",
        "--input",
        str(csv_path),
        "--out",
        str(bundle),
        "--force",
        "--tag-map",
        str(default_tag_map()),
        "--label",
        "demo extruder",
    ]
    result = subprocess.run(command, stdout=out, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise SystemExit(
            "lineside demo: building the demo bundle failed (see above). The export path needs "
            "the workstation extra: pip install -e '.[export]' (or run `make demo`)."
        )
    return bundle


def demo_config(
    state: Path,
    bundle: Path,
    plc_port: int,
    opcua_port: int,
    speedup: float,
    password: str | None = None,
) -> SiteConfig:
    """The example site config, pointed at the demo's ports, state and speed.

    With a `password`, the SCADA server is the demo's (a `viewer` user with that password);
    without, it is the example site's, on `opcua_port` with its PKI in `state`."""
    site = load_config(firmware_configs() / "sites" / "demo-extruder.toml")
    plcs = tuple(
        dataclasses.replace(
            plc,
            port=plc_port,
            poll_interval_s=plc.poll_interval_s / speedup,
            timeout_s=plc.timeout_s / speedup,
            max_backoff_s=plc.max_backoff_s / speedup,
            devices=tuple(
                dataclasses.replace(d, poll_interval_s=d.poll_interval_s / speedup)
                for d in plc.devices
            ),
        )
        for plc in site.plcs
    )
    return dataclasses.replace(
        site,
        bundle=bundle,
        plcs=plcs,
        journal_path=state / "events.sqlite",
        opcua=demo_opcua(state, opcua_port, password)
        if password is not None
        else dataclasses.replace(
            site.opcua,
            endpoint=f"opc.tcp://127.0.0.1:{opcua_port}/lineside",
            pki_dir=state / "opcua-pki",
        ),
    )


def write_site_file(state: Path, bundle: Path, plc_port: int, opcua_port: int) -> Path:
    """Write the example site config with absolute paths and these ports, for `lineside run`."""
    examples = firmware_configs()
    text = (examples / "sites" / "demo-extruder.toml").read_text()
    for old, new in (
        ('"../../.demo/bundle"', f'"{bundle.resolve()}"'),
        ('"../../.demo/events.sqlite"', f'"{(state / "events.sqlite").resolve()}"'),
        ('"../plc/simulated-extruder.toml"', f'"{examples / "plc" / "simulated-extruder.toml"}"'),
        ("port = 5020", f"port = {plc_port}"),
        ("127.0.0.1:4840", f"127.0.0.1:{opcua_port}"),
    ):
        if old not in text:
            raise ValueError(f"the example site no longer contains {old}")
        text = text.replace(old, new)
    path = state / "site.toml"
    path.write_text(text)
    return path


class DemoRun:
    """One demo run: simulator, agent, fault schedule, live view, scoring."""

    def __init__(
        self,
        config: SiteConfig,
        seconds: float,
        speedup: float,
        view: LiveView | None,
        seed: int = DEMO_SEED,
    ):
        self.config = config
        self.speedup = speedup
        self.total_s = seconds * speedup
        self.score = DemoScore(plan(self.total_s), self.total_s)
        self.line = ExtrusionLine(seed=seed)
        plc_cfg = config.plcs[0]
        device = plc_cfg.devices[0]
        self.plc = SimulatedPlc(
            self.line,
            port=plc_cfg.port,
            unit=device.unit,
            period_s=1.0 / speedup,
            tag_map=device.tag_map,
        )
        self.agent = Agent(config)
        self.agent.listeners.append(self._on_result)
        self.view = view
        self._t0_wall = 0.0
        self.active: FaultRecord | None = None

    def line_time(self, wall: float) -> float:
        """Wall-clock time to line seconds since the demo started."""
        return (wall - self._t0_wall) * self.speedup

    def _on_result(self, result: LineResult) -> None:
        t = self.line_time(result.ts)
        for event in result.events:
            if event.state is EventState.RAISED:
                self.score.alarm_raised(t, event.detector)
        if self.view is not None:
            self.view.update(t, result, self.active, self.agent)

    async def _until(self, line_t: float) -> None:
        while self.line.t < line_t:
            await asyncio.sleep(max(0.001, (line_t - self.line.t) / self.speedup))

    async def _schedule(self) -> None:
        for record in self.score.faults:
            await self._until(record.injected_at)
            self.line.inject(record.planned.make())
            self.active = record
            await self._until(record.cleared_at)
            self.line.clear()
            self.active = None
        await self._until(self.total_s)

    async def run(self) -> DemoScore:
        """Run the whole demo and return its score."""
        await self.plc.start()
        self._t0_wall = time.time()
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            sim = tg.create_task(self.plc.run(), name="simulator")
            agent = tg.create_task(self.agent.run(ready), name="agent")
            view = tg.create_task(self.view.run(), name="view") if self.view else None
            await ready.wait()
            await self._schedule()
            for task in (agent, sim, view):
                if task is not None:
                    task.cancel()
        await self.plc.stop()
        return self.score


def run_demo(
    seconds: float, speedup: float, state: Path, as_json: bool, live: bool, seed: int = DEMO_SEED
) -> int:
    """The `lineside demo` command."""
    out = sys.stderr if as_json else sys.stdout
    try:
        plan(seconds * speedup)
    except ValueError as exc:
        print(f"lineside demo: {exc}", file=sys.stderr)
        return 2
    state.mkdir(parents=True, exist_ok=True)
    bundle = ensure_bundle(state, out)
    password = secrets.token_urlsafe(12)
    opcua_port = demo_opcua_port()
    config = demo_config(state, bundle, free_port(), opcua_port, speedup, password)
    # The status page (agent.sinks.web) on loopback, with the same user and password as SCADA.
    web = WebConfig(port=free_port())
    config = dataclasses.replace(config, web=web)
    # Each demo is a new simulated line from t = 0: the last demo's detector state is not its.
    fresh = dataclasses.replace(config.detection, state_max_age_s=0.0)
    config = dataclasses.replace(config, detection=fresh)
    trusted = config.opcua.trusted_path.resolve()
    moved = "" if opcua_port == DEMO_OPCUA_PORT else f" (port {DEMO_OPCUA_PORT} is taken)"
    print(
        f"Simulated extrusion line at {speedup:g}x for {seconds:g} s "
        f"({seconds * speedup:.0f} line seconds).\n"
        f"SCADA: {config.opcua.endpoint}{moved}, SignAndEncrypt "
        f"(Basic256Sha256 or Aes256_Sha256_RsaPss)\n"
        f"  user {DEMO_USER}, password {password} (new for this run; read-only)\n"
        f"  client certificates are accepted once placed in {trusted}\n"
        f"  refused ones wait in {config.opcua.rejected_path.resolve()}\n"
        f"Status page: http://127.0.0.1:{web.port}/ (same user and password)",
        file=out,
    )
    view = LiveView(out, config.line, interactive=live and out.isatty())

    async def main() -> tuple[DemoRun, DemoScore]:
        run = DemoRun(config, seconds, speedup, view, seed)
        return run, await run.run()

    run, score = asyncio.run(main())
    view.close()
    print("\n" + score.table(), file=out)
    manifest = run.agent.bundle.manifest
    print(
        f"model {manifest.model_version} ({manifest.label}), threshold {manifest.threshold:.4g}; "
        f"events journaled to {config.journal_path}",
        file=out,
    )
    if as_json:
        print(json.dumps(score.to_json()))
    return 0
