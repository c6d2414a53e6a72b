"""A whole first day, from outside: `lineside run` as a process on a site with no model, an
independent Modbus server (libmodbus, C) with a register map this test writes in datasheet
(Modicon) notation, a SCADA client on the agent's OPC-UA server, and the CLI for the rest.

Start with no model -> values on OPC-UA within the first polls -> comms alarm when the server is
killed, cleared when it returns -> learning completes -> the recording trains a bundle with
`lineside-export train` -> an injected step raises an SPC/shift alarm -> `lineside bundle
install` switches the running agent to the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client

from agent.sinks.journal import read_events
from tests.helpers import REPO, eventually, free_port
from tests.libmodbus_helpers import FIXTURES, ServerProcess, build_server

POLL_S = 0.1
TAG_MAP = """
address_style = "modicon"   # the datasheet's numbers, as printed

[[tag]]
name = "pressure"
address = 40001
type = "float32"
order = "ABCD"
unit = "bar"

[[tag]]
name = "temperature"
address = 40003
type = "float32"
order = "CDAB"
unit = "degC"

[[tag]]
name = "speed"
address = 40005
type = "uint16"
unit = "rpm"

[[tag]]
name = "speed_setpoint"
address = 40006
type = "uint16"
unit = "rpm"

[[tag]]
name = "status_word"
address = 40007
type = "uint16"
role = "status"

[[tag]]
name = "cycles"
address = 40008
type = "uint16"
role = "counter"

[[tag]]
name = "running"
address = 1
type = "bool"
"""

SITE = """
[line]
name = "cell-7"

[learning]
period_s = 8.0
min_rows = 60

[record]
path = "recordings"

[opcua]
endpoint = "opc.tcp://127.0.0.1:{opcua}/lineside"
security = "none"            # loopback only, for this test's client
allow_anonymous = true

[journal]
path = "state/events.sqlite"

[[plc]]
name = "press-1"
host = "127.0.0.1"
port = {plc}
unit = 1
poll_interval_s = {poll}
timeout_s = {timeout}
max_backoff_s = 0.5
tag_map = "device.toml"
"""


@pytest.fixture(scope="module")
def process_server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("libmodbus") / "process"
    return build_server(FIXTURES / "libmodbus_process.c", out)


@pytest.fixture
def device(process_server: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(process_server, free_port())
    server.start()
    yield server
    server.kill()


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`python -m agent ...` or `python -m export ...` from the repository (caller checks)."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
    )  # fmt: skip


class Scada:
    """An anonymous OPC-UA client, reconnecting when the agent restarts its server."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client: Client | None = None
        self.ns = 0

    async def read(self, path: str) -> Any:
        """The data value at `path`, connecting (again) for up to 30 s while the server starts."""
        for _ in range(100):
            try:
                if self.client is None:
                    client = Client(self.endpoint, timeout=5)
                    await client.connect()
                    self.client = client
                    self.ns = await client.get_namespace_index("urn:lineside")
                node = self.client.get_node(f"ns={self.ns};s={path}")
                return await node.read_data_value(raise_on_bad_status=False)
            except (OSError, TimeoutError, ConnectionError, asyncio.CancelledError):
                await self.close()
                await asyncio.sleep(0.3)
        raise TimeoutError(f"cannot read {path}")

    async def value(self, path: str) -> Any:
        return (await self.read(path)).Value.Value

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):  # a server gone away cannot be said goodbye to
                await client.disconnect()


def journal(path: Path, kind: str, state: str, since: float = 0.0) -> list[dict[str, Any]]:
    return [e for e in read_events(path, since=since) if e["kind"] == kind and e["state"] == state]


async def journaled(path: Path, kind: str, state: str) -> bool:
    return bool(path.exists() and journal(path, kind, state))


async def test_a_first_day_on_a_line(device: ServerProcess, tmp_path: Path) -> None:
    opcua = free_port()
    (tmp_path / "device.toml").write_text(TAG_MAP)
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(opcua=opcua, plc=device.port, poll=POLL_S, timeout=0.08))
    checked = cli("agent", "check-config", str(site))
    assert checked.returncode == 0, checked.stderr
    assert "no model: commissioning mode" in checked.stdout
    events = tmp_path / "state" / "events.sqlite"
    log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(site)], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    scada = Scada(f"opc.tcp://127.0.0.1:{opcua}/lineside")
    line = "Lines/cell-7"
    try:
        # 1. No model, values on OPC-UA from the first polls, with their quality.
        async def good(tag: str) -> bool:
            value = await scada.read(f"{line}/Signals/{tag}/Value")
            return bool(value.StatusCode.is_good())

        await eventually(lambda: good("pressure"), timeout=60)
        pressure = await scada.value(f"{line}/Signals/pressure/Value")
        assert 170.0 < pressure < 190.0  # 40001..40002 as ABCD float32: the datasheet's layout
        assert 205.0 < await scada.value(f"{line}/Signals/temperature/Value") < 215.0
        assert await scada.value(f"{line}/Signals/speed_setpoint/Value") == 1800
        assert await scada.value("Plcs/press-1/State") == "ok"

        # 2. The PLC dies: a comms alarm, journaled, on Plcs/; learning waits. It comes back.
        device.kill()

        async def down() -> bool:
            return await scada.value("Plcs/press-1/State") == "down"

        await eventually(down, timeout=30)
        assert "Errno 111" in await scada.value("Plcs/press-1/LastError")
        await eventually(lambda: journaled(events, "comms", "raised"), 15)
        raised = journal(events, "comms", "raised")[-1]
        assert "press-1" in raised["message"] and "unit 1" in raised["message"]
        device.start()

        async def back() -> bool:
            return await scada.value("Plcs/press-1/State") == "ok"

        await eventually(back, timeout=30)
        await eventually(lambda: journaled(events, "comms", "cleared"), 15)

        # 3. Learning completes on good rows only; setpoint, status and counter are not modelled.
        async def learned() -> bool:
            return await scada.value(f"{line}/LearningState") == "learned"

        assert await scada.value(f"{line}/Learning") is True
        await eventually(learned, timeout=90)
        states = {
            tag: await scada.value(f"{line}/Signals/{tag}/SpcState")
            for tag in ("pressure", "temperature", "speed", "speed_setpoint")
        }
        assert states["pressure"] == "in-control" and states["temperature"] == "in-control"
        assert states["speed_setpoint"].startswith("not-modelled")

        # 4. A recording of normal running trains a bundle on the workstation.
        await asyncio.sleep(25.0)  # 250 more rows at 10 Hz
        copied = tmp_path / "shift"
        copied.mkdir()
        for path in sorted((tmp_path / "recordings").glob("*.csv")):
            text = path.read_text()
            (copied / path.name).write_text(text[: text.rfind("\n") + 1])  # whole rows only
        bundle = tmp_path / "bundle"
        trained = cli(
            "export", "train", "--data", str(copied), "--tag-map", str(tmp_path / "device.toml"),
            "--out", str(bundle), "--window", "32", "--epochs", "8", "--seed", "1", "--quiet",
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "left out" in trained.stdout + trained.stderr
        keys = tmp_path / "keys"
        made = cli("export", "keygen", "--out", str(keys))
        assert made.returncode == 0, made.stderr
        key = next(keys.glob("*.key"))
        signed = cli(
            "export", "sign", str(bundle), "--key", str(key), "--out", str(tmp_path / "m.bundle")
        )
        assert signed.returncode == 0, signed.stderr

        # 5. A step on the pressure raises an alarm on the limits learnt on the device.
        since = time.time()
        device.send(signal.SIGUSR1)

        async def alarmed() -> bool:
            return bool(await scada.value(f"{line}/SpcAlarmActive")) or bool(
                await scada.value(f"{line}/AlarmActive")
            )

        await eventually(alarmed, timeout=30)

        async def step_journaled() -> bool:
            raised = journal(events, "spc", "raised", since)
            raised += journal(events, "anomaly", "raised", since)
            return any(e["tag"] == "pressure" for e in raised)

        await eventually(step_journaled, timeout=15)
        device.send(signal.SIGUSR2)

        # 6. The bundle goes in; the running agent switches from learnt limits to the model.
        installed = cli(
            "agent", "bundle", "install", str(tmp_path / "m.bundle"), "--state-dir",
            str(tmp_path / "state"), "--trust", str(keys), "--config", str(site),
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr

        async def on_model() -> bool:
            return str(await scada.value(f"{line}/ModelVersion")).startswith("1")

        await eventually(on_model, timeout=60)
        assert await scada.value(f"{line}/LearningState") == "model"
        assert agent.poll() is None  # the same process, never restarted by hand

        async def scored() -> bool:
            value = await scada.read(f"{line}/AnomalyScore")
            return value.StatusCode.is_good() and value.Value.Value is not None

        await eventually(scored, timeout=60)
    finally:
        await scada.close()
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        finally:
            log.close()
    output = (tmp_path / "agent.log").read_text()
    assert agent.returncode == 0, output[-3000:]
    assert "commissioning mode" in output
