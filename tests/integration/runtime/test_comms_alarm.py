"""Losing a PLC is data: the real agent, the simulator's pymodbus server killed and restarted on
the same port, the journal read from its SQLite file and Plcs/ read by a SCADA client (the
secure path: SignAndEncrypt, the `viewer` user), all on loopback at 10x speed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client

from agent.demo.simulator.plc import SimulatedPlc
from agent.demo.simulator.process import ExtrusionLine
from agent.runtime.app import Agent
from agent.sinks.journal import read_events
from tests.helpers import REPO, SCADA_PASSWORD, eventually, free_port, site_config
from tests.scada_helpers import node, viewer_client

SPEEDUP = 10.0
PLC = "extruder-plc"  # the example site's one PLC connection


def comms(config_path: Path, since: float) -> list[dict[str, Any]]:
    """The comms records since `since` (a slow read before it may have had its own)."""
    return [e for e in read_events(config_path, since=since) if e["kind"] == "comms"]


async def journaled(path: Path, since: float, count: int) -> bool:
    return len(comms(path, since)) >= count


async def read(client: Client, path: str) -> Any:
    return await (await node(client, path)).read_value()


async def condition(client: Client, child: str) -> Any:
    """A variable of the PLC's comms alarm condition (the instance mirrors its last event)."""
    alarm = await node(client, f"Plcs/{PLC}/Alarm")
    return await (await alarm.get_child([f"0:{p}" for p in child.split("/")])).read_value()


def outage_warnings(caplog: pytest.LogCaptureFixture, since: float) -> list[str]:
    """Our WARNING lines that speak of the PLC (pymodbus's own logger is quiet in service)."""
    return [
        r.getMessage() for r in caplog.records
        if r.name.startswith("agent") and r.levelno >= logging.WARNING
        and PLC in r.getMessage() and r.created >= since
    ]  # fmt: skip


async def test_killed_plc_raises_a_journaled_comms_alarm_and_clears_when_back(
    bundle_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    plc_port, opcua_port = free_port(), free_port()
    config = site_config(bundle_dir, tmp_path, plc_port, opcua_port, SPEEDUP)
    plc = SimulatedPlc(ExtrusionLine(seed=9), port=plc_port, period_s=1.0 / SPEEDUP)
    await plc.start()
    agent = Agent(config)
    ready = asyncio.Event()
    tasks = [asyncio.create_task(plc.run()), asyncio.create_task(agent.run(ready))]
    client = await viewer_client(config.opcua, tmp_path / "scada", SCADA_PASSWORD)
    base = f"Plcs/{PLC}"
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await client.connect()

        async def state_is(wanted: str) -> bool:
            return bool(await read(client, f"{base}/State") == wanted)

        await eventually(lambda: state_is("ok"), 5)
        assert await read(client, f"{base}/LastError") == ""
        good_before = await read(client, f"{base}/LastGood")
        assert good_before > dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        assert await read(client, f"{base}/Polls") > 0
        assert await condition(client, "ActiveState/Id") is False

        killed = time.time()
        await plc.stop()  # the PLC is gone: its port refuses connections
        await eventually(lambda: state_is("down"), 5)
        await eventually(lambda: journaled(config.journal_path, killed, 1), 5)
        (raised,) = comms(config.journal_path, killed)
        assert raised["state"] == "raised" and raised["detector"] == "comms"
        assert raised["message"].startswith(f"PLC {PLC} unit 1 (127.0.0.1:{plc_port})")
        assert "[Errno 111]" in raised["message"]  # connection refused, by its errno
        details = raised["details"]
        assert (details["plc"], details["unit"]) == (PLC, 1)
        assert details["endpoint"] == f"127.0.0.1:{plc_port}" and "[Errno 111]" in details["error"]
        assert "[Errno 111]" in await read(client, f"{base}/LastError")
        assert await read(client, f"{base}/Failures") > 0
        assert await condition(client, "ActiveState/Id") is True
        message = await condition(client, "Message")
        assert "[Errno 111]" in message.Text
        device = config.plcs[0].devices[0].name
        assert f"{PLC}/{device} down (connect to 127.0.0.1:{plc_port} failed: [Errno 111]" in (
            agent.status()
        )
        failures = await read(client, f"{base}/Failures")
        await eventually(lambda: _more(client, f"{base}/Failures", failures + 2), 5)
        assert len(comms(config.journal_path, killed)) == 1  # one raise, however many polls fail
        assert len(outage_warnings(caplog, killed)) == 1

        await plc.start()  # back, on the same port
        await eventually(lambda: state_is("ok"), 10)
        await eventually(lambda: journaled(config.journal_path, killed, 2), 5)
        cleared = comms(config.journal_path, killed)[1]
        assert cleared["state"] == "cleared" and cleared["details"]["duration_s"] > 0
        assert "answering again after" in cleared["message"]
        assert await read(client, f"{base}/LastGood") > good_before
        assert await read(client, f"{base}/LastError") == ""
        assert await read(client, f"{base}/Reconnects") >= 1
        assert await condition(client, "ActiveState/Id") is False
        assert "down (" not in agent.status()
        assert len(outage_warnings(caplog, killed)) == 2  # one when it went, one when it came back
        listed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "agent", "events", "--journal", str(config.journal_path),
             "--kind", "comms", "--format", "json"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert [r["state"] for r in json.loads(listed.stdout)][-2:] == ["raised", "cleared"]
    finally:
        await client.disconnect()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plc.stop()


async def _more(client: Client, path: str, at_least: int) -> bool:
    return bool(await read(client, path) >= at_least)
