"""The daemon's parts on real sockets and files: sd_notify, journald protocol, reload, health."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.reload import plan_reload
from agent.demo.run import write_site_file
from agent.ops import systemd
from agent.ops.logs import (
    JournaldHandler,
    configure_logging,
    decode_fields,
    encode_field,
    journald_socket,
    set_context,
)
from agent.pipeline.events.alarms import SustainedRuleAlarm


def bound(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(5)
    return sock


def test_systemd_python_is_used_when_installed() -> None:
    installed = importlib.util.find_spec("systemd") is not None
    assert systemd.backend() == ("systemd-python" if installed else "socket")


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
@pytest.mark.parametrize("backend", ["installed", "fallback"])
def test_notify_speaks_the_socket_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, abstract: bool, backend: str
) -> None:
    address = f"@lineside-{uuid.uuid4().hex}" if abstract else str(tmp_path / "notify")
    with bound(address) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        if backend == "installed":  # systemd-python when present, else the fallback
            assert systemd.notify("READY=1\nSTATUS=model 3")
        else:  # always our own datagram code
            assert systemd.send_datagram(address, "READY=1\nSTATUS=model 3")
        assert sock.recv(4096) == b"READY=1\nSTATUS=model 3"
        assert systemd.reloading()
        reload_msg = sock.recv(4096).decode()
        assert reload_msg.startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert int(reload_msg.rsplit("=", 1)[1]) > 0


def test_notify_outside_systemd_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.notify("READY=1") is False  # no exception either


def test_watchdog_interval_and_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address = str(tmp_path / "notify")
    with bound(address) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        dog = systemd.Watchdog()
        assert dog.enabled and dog.interval_s == 0.2
        for _ in range(50):  # many iterations in 0.3 s: only the due pings go out
            dog.kick()
            time.sleep(0.006)
        assert 2 <= dog.pings <= 3
        assert sock.recv(100) == b"WATCHDOG=1"
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
        assert not systemd.Watchdog().enabled
        monkeypatch.setenv("WATCHDOG_USEC", "0")
        monkeypatch.delenv("WATCHDOG_PID")
        assert not systemd.Watchdog().enabled


def test_journald_native_encoding_round_trips() -> None:
    datagram = encode_field("MESSAGE", "two\nlines") + encode_field("LINE", "ex-1")
    assert datagram.startswith(b"MESSAGE\n" + (9).to_bytes(8, "little") + b"two\nlines\n")
    assert decode_fields(datagram) == {"MESSAGE": "two\nlines", "LINE": "ex-1"}


def test_journald_handler_fields_and_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = str(tmp_path / "journal.socket")
    with bound(address) as sock:
        handler = JournaldHandler(address)
        logger = logging.getLogger("lineside-test-journald")
        logger.addHandler(handler)
        logger.propagate = False
        set_context(LINE="ex-1", MODEL_VERSION="7")
        try:
            logger.error("alarm %s", "raised", extra={"TAG": "melt_pressure", "lower": "x"})
            fields = decode_fields(sock.recv(65536))
            assert fields["MESSAGE"] == "alarm raised" and fields["PRIORITY"] == "3"
            assert fields["TAG"] == "melt_pressure" and "lower" not in fields
            assert fields["LINE"] == "ex-1" and fields["MODEL_VERSION"] == "7"
            assert fields["CODE_FUNC"] == "test_journald_handler_fields_and_fallback"
            sock.close()
            os.unlink(address)  # journald gone: the line must still come out, on stderr
            logger.warning("still here")
        finally:
            set_context(LINE="", MODEL_VERSION="")
            logger.removeHandler(handler)
            handler.close()
    assert "WARNING lineside-test-journald: still here" in capsys.readouterr().err


def test_journald_is_used_only_when_stderr_is_the_journal_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = tmp_path / "journal.socket"
    with bound(str(address)):
        monkeypatch.setenv("LINESIDE_JOURNAL_SOCKET", str(address))
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # inherited from a parent, not our stderr
        assert journald_socket() is None
        with (tmp_path / "err").open("w") as err:
            st = os.fstat(err.fileno())
            monkeypatch.setattr(sys, "stderr", err)
            monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
            assert journald_socket() == str(address)
            root = logging.getLogger()
            saved = list(root.handlers), root.level
            try:
                assert configure_logging("info") == "journald"
                assert isinstance(root.handlers[0], JournaldHandler)
            finally:
                root.handlers[0].close()
                root.handlers[:], root.level = saved


def test_reload_plan_names_what_applies_and_what_needs_a_restart(
    bundle_dir: Path, tmp_path: Path
) -> None:
    site = write_site_file(tmp_path, bundle_dir, 5020, 4840)
    old = load_config(site)
    tuned = dataclasses.replace(
        old,
        detection=dataclasses.replace(old.detection, raise_after=5, spc_span=7),
        journal_max_mb=64.0,
    )
    plan = plan_reload(old, tuned)
    assert not plan.refused
    assert plan.apply == ("journal.max_mb", "detection.raise_after", "detection.spc_span")
    moved = dataclasses.replace(
        tuned,
        line="other",
        detection=dataclasses.replace(tuned.detection, flatline_samples=3, precision="fp32"),
    )
    plan = plan_reload(old, moved)
    assert plan.refused
    assert plan.restart == ("line.name", "detection.flatline_samples", "model.precision")


def test_health_check_fresh_stale_and_missing(tmp_path: Path) -> None:
    beat = systemd.Heartbeat(tmp_path / "hb.json", extra=lambda: {"journal_ok": False})
    beat.beat()
    beat.write()
    ok, reason = systemd.check(beat.path, 30)
    assert ok and "journal NOT writing" in reason
    assert json.loads(beat.path.read_text())["pid"] == os.getpid()
    ok, reason = systemd.check(beat.path, 30, now=time.time() + 60)
    assert not ok and "stalled" in reason
    beat.remove()
    ok, reason = systemd.check(beat.path, 30)
    assert not ok and "no heartbeat" in reason


async def test_reload_retunes_alarms_in_place_and_keeps_the_model(
    bundle_dir: Path, tmp_path: Path
) -> None:
    from agent.runtime.app import Agent
    from tests.helpers import site_config

    config = site_config(bundle_dir, tmp_path, 5020, 4840)
    agent = Agent(config)
    monitor, vae = agent.monitor, agent.monitor.vae
    alarms = monitor.alarms
    alarms["vae"].active = alarms["spc"].active = True  # alarms standing at reload time
    new = dataclasses.replace(
        config,
        detection=dataclasses.replace(
            config.detection, raise_after=7, spc_span=8, spc_hits=4, clear_ratio=0.6
        ),
        journal_retention_days=7.0,
    )
    plan = agent.reload(new)
    assert not plan.refused and agent.config is new
    assert agent.monitor is monitor and monitor.vae is vae  # same window, same ONNX session
    assert alarms["vae"].raise_after == 7 and alarms["vae"].active
    assert monitor.clear_ratio == 0.6
    # The summed score's alarm and the shift alarm take the same debounce and hysteresis: every
    # score alarm of the table is leveled against the line's one clear_ratio.
    assert all(a.raise_after == 7 for n, a in alarms.items() if n != "spc")
    assert monitor.shift is not None and "shift" in alarms
    spc = alarms["spc"]
    assert isinstance(spc, SustainedRuleAlarm)
    assert spc.hits == 4 and spc.span == 8
    assert spc.active  # a standing SPC alarm is not silently dropped
    assert agent.journal.retention.max_age_s == 7 * 86400
    refused = agent.reload(dataclasses.replace(new, line="elsewhere"))
    assert refused.restart == ("line.name",) and agent.config is new


def test_lineside_health_command_exit_codes(tmp_path: Path) -> None:
    import subprocess

    from tests.helpers import REPO

    beat = systemd.Heartbeat(tmp_path / "heartbeat.json")
    beat.beat()
    beat.write()
    run = [sys.executable, "-m", "agent", "health", "--file", str(beat.path), "--max-age", "30"]
    fresh = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 0 and fresh.stdout.startswith("ok: last progress")
    beat.last_progress -= 120  # the loop stopped two minutes ago
    beat.write()
    stale = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert stale.returncode == 1 and "detection loop stalled" in stale.stderr
