"""The independent Modbus servers of the tests: C programs on libmodbus, built on the spot."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def build_server(source: Path, out: Path) -> Path:
    """Compile a libmodbus server (gcc and libmodbus-dev, which `make test` installs)."""
    if shutil.which("gcc") is None or not Path("/usr/include/modbus/modbus.h").exists():
        pytest.fail("needs gcc and libmodbus-dev (make test installs the Debian packages)")
    built = subprocess.run(
        ["gcc", "-O1", "-Wall", "-Werror", "-I/usr/include/modbus", str(source), "-o", str(out),
         "-lmodbus", "-lm"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return out


class ServerProcess:
    """One run of a libmodbus server on a loopback port: start, signal, kill, start again."""

    def __init__(self, binary: Path, port: int) -> None:
        self.binary = binary
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start it and wait until it listens."""
        proc = subprocess.Popen(
            [str(self.binary), str(self.port)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        self.proc = proc

    def send(self, sig: signal.Signals) -> None:
        """Send it a signal (the process server's step fault: SIGUSR1 on, SIGUSR2 off)."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """Kill it, as a PLC that loses power."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
