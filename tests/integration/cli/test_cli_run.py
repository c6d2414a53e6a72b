"""`lineside run` as a real process: clean start, SIGTERM drain, clear start-up errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from agent.demo.run import write_site_file
from agent.sinks.journal import read_events
from tests.helpers import REPO, free_port


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def test_sigterm_drains_and_exits_zero(bundle_dir: Path, tmp_path: Path) -> None:
    plc_port, opcua_port = free_port(), free_port()
    site = write_site_file(tmp_path, bundle_dir, plc_port, opcua_port)
    sim = start(["simulate", "--port", str(plc_port), "--speedup", "10"])
    agent = start(["run", "--config", str(site)])
    try:
        wait_listening(opcua_port)
        time.sleep(1.0)
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=20)
    finally:
        sim.terminate()
        sim.communicate(timeout=20)
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, stderr[-2000:]
    assert "agent ready: line extruder-1" in stderr
    assert "Traceback" not in stderr
    assert read_events(tmp_path / "events.sqlite") == []  # the journal exists and is readable


def test_taken_opcua_port_is_a_clear_error(bundle_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        site = write_site_file(tmp_path, bundle_dir, free_port(), taken)
        result = subprocess.run(
            [sys.executable, "-m", "agent", "run", "--config", str(site)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on opc.tcp://127.0.0.1:{taken}/lineside" in result.stderr
    assert "fix:" in result.stderr and "Traceback" not in result.stderr
