"""`lineside run` under a real notify socket and a real journald-protocol socket the test owns.

The simulator is the PLC (`lineside simulate`, pymodbus), the agent is a separate process,
and systemd's side of the protocols is played by datagram sockets bound here.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.demo.run import write_site_file
from agent.ops.logs import decode_fields
from tests.agent_rig import spawn
from tests.helpers import free_port


class Listener:
    """A datagram socket collecting (monotonic time, payload) in a thread."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, bytes]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data))

    def texts(self) -> list[tuple[float, str]]:
        return [(t, d.decode()) for t, d in list(self.messages)]

    def wait(self, needle: str, timeout: float = 30.0, after: float = 0.0) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, text in self.texts():
                if t >= after and needle in text:
                    return t, text
            time.sleep(0.02)
        raise AssertionError(f"no {needle!r} within {timeout} s; got {self.texts()[-5:]}")

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify() -> Iterator[Listener]:
    listener = Listener(f"@lineside-test-{uuid.uuid4().hex}")  # abstract: the `@` form
    yield listener
    listener.close()


def fast_site(tmp_path: Path, bundle: Path, plc_port: int, opcua_port: int) -> Path:
    """The example site, polling at 20 Hz: load for the loop and the journal."""
    site = write_site_file(tmp_path, bundle, plc_port, opcua_port)
    text = site.read_text()
    text = text.replace("poll_interval_s = 1.0", "poll_interval_s = 0.05")
    site.write_text(text.replace("timeout_s = 0.5", "timeout_s = 0.04"))
    return site


async def trusted_anonymous_client(site: Path, folder: Path) -> Any:
    """A SignAndEncrypt client whose certificate the site's server trusts, without a user."""
    from agent.config import load_config
    from tests.scada_helpers import client_certificate, secure_client, trust

    opcua = load_config(site).opcua
    cert, key, uri = client_certificate(folder, "daemon-test")
    trust(opcua, cert)
    return await secure_client(opcua.endpoint, cert, key, uri, None, None)


async def has_value(node: Any) -> bool:
    """True once a variable holds a value (a new one reads BadWaitingForInitialData)."""
    from asyncua import ua

    try:
        return bool(await node.read_value())
    except ua.UaStatusCodeError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def simulator() -> Iterator[int]:
    port = free_port()
    sim = spawn(["simulate", "--port", str(port), "--speedup", "20"], {}, subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_open(port):
        assert time.monotonic() < deadline and sim.poll() is None, "simulator did not start"
        time.sleep(0.1)
    yield port
    sim.terminate()
    sim.wait(timeout=20)


def stop(agent: Any, timeout: float = 20.0) -> float:
    started = time.monotonic()
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(timeout=timeout)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
            agent.wait()
    return time.monotonic() - started


def test_ready_status_journald_fields_reload_and_drain(
    bundle_dir: Path, tmp_path: Path, simulator: int, notify: Listener
) -> None:
    opcua_port = free_port()
    site = fast_site(tmp_path, bundle_dir, simulator, opcua_port)
    journald = Listener(str(tmp_path / "journal.socket"))
    err_path = tmp_path / "stderr.log"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with err_path.open("w") as err:
        st = os.fstat(err.fileno())
        env = {
            "NOTIFY_SOCKET": notify.address,
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
            "LINESIDE_JOURNAL_SOCKET": journald.address,
            "RUNTIME_DIRECTORY": str(run_dir),  # as RuntimeDirectory= sets it
        }
        started = time.monotonic()
        agent = spawn(["run", "--config", str(site)], env, err)
    try:
        ready_at, ready = notify.wait("READY=1", timeout=60)
        # READY only once the OPC-UA server listens and the PLC has been polled.
        assert port_open(opcua_port)
        assert "STATUS=model " in ready and "PLC extruder-plc" in ready and " ok" in ready, ready
        assert "journal ok" in ready
        assert ready_at > started

        def record(needle: str, after: float = 0.0) -> dict[str, str]:
            t, _ = journald.wait(f"MESSAGE={needle}", timeout=30, after=after)
            (raw,) = [d for tt, d in journald.messages if tt == t and needle.encode() in d]
            return decode_fields(raw)

        fields = record("agent ready: line extruder-1")
        assert fields["LINE"] == "extruder-1" and fields["SYSLOG_IDENTIFIER"] == "lineside"
        assert fields["PRIORITY"] == "6" and fields["MODEL_VERSION"] in ready
        assert fields["CODE_FUNC"] == "_announce_ready" and fields["LOGGER"] == "agent.runtime.app"
        assert "agent ready" not in err_path.read_text()  # journald got it, not stderr

        text = site.read_text()
        # 1. A reloadable change is applied, with RELOADING=1 then READY=1.
        site.write_text(text.replace("raise_after = 3 ", "raise_after = 4 "))
        mark = time.monotonic()
        agent.send_signal(signal.SIGHUP)
        notify.wait("RELOADING=1", after=mark)
        applied = record("reloaded", after=mark)
        assert "detection.raise_after" in applied["MESSAGE"]
        notify.wait("READY=1", after=mark)
        # 2. A malformed config is refused, naming the field; the old one keeps running.
        site.write_text(text.replace("raise_after = 3 ", "raise_after = -1 "))
        mark = time.monotonic()
        agent.send_signal(signal.SIGHUP)
        refused = record("reload refused", after=mark)
        assert "detection.raise_after" in refused["MESSAGE"] and refused["PRIORITY"] == "3"
        # 3. A change that needs a restart is refused as a whole.
        site.write_text(text.replace(f"127.0.0.1:{opcua_port}", f"127.0.0.1:{opcua_port + 1}"))
        mark = time.monotonic()
        agent.send_signal(signal.SIGHUP)
        restart = record("reload refused", after=mark)
        assert "opcua.endpoint changed and need a restart" in restart["MESSAGE"], restart["MESSAGE"]
        assert agent.poll() is None and port_open(opcua_port)

        heartbeat = run_dir / "heartbeat.json"  # on the runtime dir, not the state dir
        assert heartbeat.exists() and not (tmp_path / "heartbeat.json").exists()
        drain_s = stop(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        journald.close()
    assert agent.returncode == 0, err_path.read_text()[-3000:]
    assert drain_s < 15.0
    notify.wait("STOPPING=1")
    assert "Traceback" not in err_path.read_text()
    assert not heartbeat.exists()  # a stopped agent never looks healthy
    con = sqlite3.connect(tmp_path / "events.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_watchdog_pings_come_from_the_loop_and_stop_when_it_hangs(
    bundle_dir: Path, tmp_path: Path, simulator: int
) -> None:
    notify = Listener(str(tmp_path / "notify.socket"))  # a path socket this time
    opcua_port = free_port()
    site = fast_site(tmp_path, bundle_dir, simulator, opcua_port)
    err_path = tmp_path / "stderr.log"
    env = {
        "NOTIFY_SOCKET": notify.address,
        "WATCHDOG_USEC": "1000000",  # systemd's WatchdogSec=1: pings due every 0.5 s
        "LINESIDE_DEBUG_STALL_AFTER_S": "3",
    }
    with err_path.open("w") as err:
        agent = spawn(["run", "--config", str(site)], env, err)
    try:
        notify.wait("READY=1", timeout=60)
        deadline = time.monotonic() + 30
        while "the detection loop hangs now" not in err_path.read_text():
            assert time.monotonic() < deadline, err_path.read_text()[-2000:]
            time.sleep(0.05)
        stalled_at = time.monotonic()
        time.sleep(3.0)
        pings = [t for t, text in notify.texts() if text == "WATCHDOG=1"]
        before = [t for t in pings if t < stalled_at]
        gaps = [b - a for a, b in itertools.pairwise(before)]
        assert len(before) >= 4 and max(gaps) < 0.9, gaps  # every 0.5 s, from the loop
        late = [t for t in pings if t > stalled_at + 0.1]
        assert late == [], f"{len(late)} pings after the loop hung"
        # The event loop itself is alive (the server answers): only a ping from the detection
        # loop's own progress can tell a hung loop from a live process.
        assert port_open(opcua_port) and agent.poll() is None
        stop(agent)  # a hung detection loop is cancellable: still a clean stop
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        notify.close()
    assert agent.returncode == 0, err_path.read_text()[-2000:]


def read_only_prefix(state: Path) -> tuple[str, ...]:
    if os.getuid() != 0:
        state.chmod(0o555)
        return ()
    setup = f"mount --bind {state} {state} && mount -o remount,bind,ro {state}"
    return ("unshare", "-m", "sh", "-c", f'{setup} && exec "$@"', "sh")


async def test_read_only_state_directory_alarms_on_opcua_and_detection_continues(
    bundle_dir: Path, tmp_path: Path, simulator: int, notify: Listener
) -> None:
    opcua_port = free_port()
    site = fast_site(tmp_path, bundle_dir, simulator, opcua_port)
    state = tmp_path / "state"
    state.mkdir()
    text = site.read_text().replace(str(tmp_path / "events.sqlite"), str(state / "e.db"))
    # Only the journal's directory is read-only; the OPC-UA PKI (by default beside the
    # journal) goes where the server can write its certificate on first start.
    pki = f'allow_anonymous = true\npki_dir = "{tmp_path / "pki"}"'
    site.write_text(text.replace("allow_anonymous = true", pki))
    err_path = tmp_path / "stderr.log"
    run_dir = tmp_path / "run"  # the heartbeat's tmpfs, writable while the state dir is not
    run_dir.mkdir()
    env = {"NOTIFY_SOCKET": notify.address, "LINESIDE_RUNTIME_DIR": str(run_dir)}
    with err_path.open("w") as err:
        agent = spawn(
            ["run", "--config", str(site)], env, err, read_only_prefix(state),
        )  # fmt: skip
    try:
        _, ready = notify.wait("READY=1", timeout=60)
        assert "journal NOT WRITING" in ready, ready
        client = await trusted_anonymous_client(site, tmp_path / "scada")
        async with client:
            ns = await client.get_namespace_index("urn:lineside")
            ok = client.get_node(f"ns={ns};s=Agent/JournalOk")
            errors = client.get_node(f"ns={ns};s=Agent/JournalWriteErrors")
            processed = client.get_node(f"ns={ns};s=Agent/SamplesProcessed")
            first = await processed.read_value()
            time.sleep(1.0)  # the agent is another process: blocking here is harmless
            assert await processed.read_value() > first + 5  # detection runs on
            assert await ok.read_value() is False
            assert await errors.read_value() >= 1
        # `lineside health` tells "cannot write" (3) from dead or stalled (1).
        health = [sys.executable, "-m", "agent", "health", "--state-dir", str(state)]
        health_env = {**os.environ, "LINESIDE_RUNTIME_DIR": str(run_dir)}

        def judged() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                health, env=health_env, capture_output=True, text=True, timeout=60
            )

        deadline = time.monotonic() + 30  # the first heartbeat may predate the first loop turn
        while (verdict := judged()).returncode == 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert verdict.returncode == 3, verdict.stderr
        assert "cannot write" in verdict.stderr and str(state) in verdict.stderr
        alive = subprocess.run(
            [*health, "--alive-only"], env=health_env, capture_output=True, text=True, timeout=60
        )
        assert alive.returncode == 0 and "cannot write" in alive.stdout
        drain_s = stop(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        state.chmod(0o755)
    log = err_path.read_text()
    assert agent.returncode == 0, log[-3000:]
    assert drain_s < 15.0
    assert "cannot write" in log and "detection continues" in log
    assert "Traceback" not in log


async def test_agent_runs_under_mdwe_and_the_units_syscall_filter(
    bundle_dir: Path, tmp_path: Path, simulator: int, notify: Listener
) -> None:
    """MemoryDenyWriteExecute=yes + SystemCallFilter=@system-service ~@privileged, by the kernel.

    systemd-run needs systemd as PID 1, which this machine may not have; the sandbox applies
    the same kernel rules itself (see tests/daemon_sandbox.py for what it covers).
    """
    opcua_port = free_port()
    site = fast_site(tmp_path, bundle_dir, simulator, opcua_port)
    err_path = tmp_path / "stderr.log"
    prefix = (sys.executable, "-m", "tests.daemon_sandbox", "--")
    with err_path.open("w") as err:
        agent = spawn(
            ["run", "--config", str(site)], {"NOTIFY_SOCKET": notify.address}, err, prefix
        )
    try:
        notify.wait("READY=1", timeout=60)
        client = await trusted_anonymous_client(site, tmp_path / "scada")
        async with client:
            ns = await client.get_namespace_index("urn:lineside")
            score = client.get_node(f"ns={ns};s=Lines/extruder-1/AnomalyScore")
            processed = client.get_node(f"ns={ns};s=Agent/SamplesProcessed")
            deadline = time.monotonic() + 30
            while not await has_value(score):  # the VAE needs a full window first
                assert time.monotonic() < deadline, err_path.read_text()[-3000:]
                time.sleep(0.2)
            first = await processed.read_value()
            time.sleep(1.0)
            assert await processed.read_value() > first
            assert await client.get_node(f"ns={ns};s=Agent/JournalOk").read_value() is True
        stop(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    log = err_path.read_text()
    assert "sandbox: MDWE on, seccomp allows" in log
    assert agent.returncode == 0, log[-3000:]
    assert "Traceback" not in log and "Operation not permitted" not in log


def test_a_hung_drain_is_bounded_and_a_second_sigterm_forces_the_exit(
    bundle_dir: Path, tmp_path: Path, simulator: int, notify: Listener
) -> None:
    site = fast_site(tmp_path, bundle_dir, simulator, free_port())
    env = {"NOTIFY_SOCKET": notify.address, "LINESIDE_DEBUG_DRAIN_DELAY_S": "60"}
    err_path = tmp_path / "stderr.log"

    def started() -> Any:
        with err_path.open("w") as err:
            agent = spawn(["run", "--config", str(site)], env, err)
        notify.wait("READY=1", timeout=60, after=time.monotonic())
        return agent

    def wait_log(needle: str) -> None:
        deadline = time.monotonic() + 20
        while needle not in err_path.read_text():
            assert time.monotonic() < deadline, err_path.read_text()[-2000:]
            time.sleep(0.05)

    # 1. The drain hangs; nothing else happens: the agent's own bound ends it at 15 s,
    #    before the unit's TimeoutStopSec=20 would SIGKILL it.
    agent = started()
    try:
        took = stop(agent, timeout=19)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert 14.0 < took < 18.5, took
    assert "drain did not finish in 15 s; exiting anyway" in err_path.read_text()

    # 2. The drain hangs and the admin insists: the second SIGTERM exits at once.
    agent = started()
    try:
        agent.send_signal(signal.SIGTERM)
        wait_log("the drain hangs for 60 s")
        forced = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)
        took = time.monotonic() - forced
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 130 and took < 2.0, (agent.returncode, took)
    assert "second stop signal: exiting now" in err_path.read_text()


def test_kill9_of_the_agent_at_random_moments_loses_no_committed_record(
    bundle_dir: Path, tmp_path: Path, simulator: int
) -> None:
    """The real agent journals a burst (20 records per sample at 20 Hz) and logs what its
    journal committed; it is killed at random moments, startup included, many times."""
    import random

    site = fast_site(tmp_path, bundle_dir, simulator, free_port())
    committed = tmp_path / "committed.log"
    env = {"LINESIDE_DEBUG_JOURNAL_BURST": "20", "LINESIDE_DEBUG_COMMIT_LOG": str(committed)}
    rng = random.Random(2)
    kills = 6
    for _ in range(kills):
        agent = spawn(["run", "--config", str(site)], env, subprocess.DEVNULL)
        time.sleep(rng.uniform(4.0, 9.0))  # startup takes a few seconds here: some kills hit it
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=30)
    lines = committed.read_text().split("\n")[:-1]  # a kill may cut the last line short
    ids = [ln for ln in lines if len(ln) == 32]
    assert len(ids) > 1000, len(ids)
    con = sqlite3.connect(tmp_path / "events.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in con.execute("SELECT event_id FROM events")}
    finally:
        con.close()
    missing = [i for i in ids if i not in stored]
    assert missing == [], f"{len(missing)} of {len(ids)} committed records lost"
