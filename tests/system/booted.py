"""A Debian root booted under systemd-nspawn, with systemd as its PID 1, and commands run in it.

The host has no systemd of its own, so nspawn runs with --keep-unit (no machine registration,
no scope); the unified cgroup hierarchy and the bpf syscall are what systemd needs inside for
IPAddressDeny= and friends. The container shares the host's network, so loopback servers on
either side reach each other. Commands run inside with nsenter into every namespace of the
container's PID 1. Two traps: the container mounts a tmpfs on /tmp (files for it go elsewhere,
see STAGING), and its PID 1 is found by its namespace pid, not assumed to be nspawn's child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

# Where the tests put files for the container (not /tmp, which is a tmpfs in there).
STAGING = Path("srv/lineside-test")
CONTAINER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}


class BootFailed(RuntimeError):
    """The container's systemd did not come up."""


def _children(pid: int) -> list[int]:
    """Direct children of a process (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _namespace_pid(pid: int) -> list[str]:
    """The NSpid line of a process: its pid in each pid namespace, outermost first."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return line.split()[1:]
    except OSError:
        pass
    return []


class BootedDebian:
    """systemd-nspawn --boot of `root`; `run` executes a command inside."""

    def __init__(self, root: Path, console_log: Path, devices: tuple[str, ...] = ()) -> None:
        self.root = root
        self.devices = devices  # host device nodes bound in (e.g. a loop device as a stick)
        self.console_log = console_log
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.boot_seconds = 0.0

    def boot(self, timeout: float = 90.0) -> None:
        """Start the container and wait until its systemd reports the system running."""
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        if self.devices:
            # systemd treats device units as unsupported when /sys is read-only, and a mount
            # of a block device binds to its device unit: a stick needs a writable /sys.
            env["SYSTEMD_NSPAWN_API_VFS_WRITABLE"] = "1"
        cmd = ["systemd-nspawn", "-q", "-D", str(self.root), "--boot", "--register=no",
               "--keep-unit", "--console=pipe", "--system-call-filter=bpf",
               *(f"--bind={dev}" for dev in self.devices)]  # fmt: skip
        started = time.monotonic()
        with self.console_log.open("wb") as console:
            self.proc = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.leader = self._find_leader(started + timeout)
        # "offline" until PID 1 has its private bus socket, "starting" during the boot.
        while True:
            state = self.run(["systemctl", "is-system-running"], timeout=10, check=False)
            if state.stdout.strip() in ("running", "degraded"):
                break
            if time.monotonic() > started + timeout:
                break
            time.sleep(0.1)
        if state.stdout.strip() not in ("running", "degraded"):
            failed = self.run(["systemctl", "--failed", "--no-legend"], check=False).stdout
            raise BootFailed(f"system state {state.stdout.strip()!r}; failed units: {failed}")
        self.boot_seconds = time.monotonic() - started

    def _find_leader(self, deadline: float) -> int:
        """The host pid of the container's PID 1 (a descendant of nspawn whose inner pid is 1)."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BootFailed(f"systemd-nspawn exited {self.proc.returncode}: {self.console()}")
            todo = _children(self.proc.pid)
            while todo:
                pid = todo.pop()
                ns = _namespace_pid(pid)
                if len(ns) > 1 and ns[-1] == "1":
                    return pid
                todo += _children(pid)
            time.sleep(0.05)
        raise BootFailed(f"no container PID 1 appeared: {self.console()}")

    def console(self) -> str:
        """The tail of the container's console (boot messages)."""
        try:
            return self.console_log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def run(
        self, cmd: list[str], timeout: float = 120.0, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container; raises with its output if it fails and `check`."""
        proc = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "--", *cmd],
            capture_output=True, text=True, timeout=timeout, env=CONTAINER_ENV, input=input,
            cwd="/",
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}"
                f"\n{proc.stderr[-3000:]}"
            )
        return proc

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl show -p ...` of a unit as a dict."""
        out = self.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def path(self, inside: str) -> Path:
        """The host path of a path inside the container (the root is a plain directory)."""
        return self.root / inside.lstrip("/")

    def shutdown(self, timeout: float = 30.0) -> None:
        """Power the container off (SIGTERM to nspawn asks its systemd to), then make sure."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
