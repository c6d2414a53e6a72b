"""Telling supervisors the truth: sd_notify (READY, STATUS, WATCHDOG...) and a heartbeat file.

systemd-python's `systemd.daemon.notify` is used when installed (the `systemd` extra, or
Debian's python3-systemd); otherwise the datagram is sent by hand: the protocol is one
AF_UNIX datagram of newline-separated KEY=VALUE lines to `$NOTIFY_SOCKET`, a path or, with a
leading `@`, an abstract socket. Outside systemd (`NOTIFY_SOCKET` unset) every call is a
no-op, so the agent runs the same in a container or a terminal.

For supervisors without sd_notify (Docker HEALTHCHECK) there is a heartbeat file and
`lineside health`. The detection loop only records the time of its last iteration (`beat`,
no I/O); a separate task rewrites the file from that, so the disk never sits on the hot path,
and the file goes stale as soon as the loop stops making progress, like the watchdog.

The file holds one JSON object: the wall-clock time of the last loop iteration, the journal's
health (and its error) and the pid. It lives in the runtime directory, a tmpfs under systemd
(`/run/lineside`, RuntimeDirectory=), so a full or read-only state directory does not stop the
agent from saying it is alive; `runtime_dir` says where (LINESIDE_RUNTIME_DIR, systemd's
RUNTIME_DIRECTORY, /run/lineside, then the state directory, the first that is writable).

`lineside health` exits with one of `HEALTH_CODES`: 0 alive and writing, 1 not running or
stalled (restart it), 3 alive but cannot write its state (the journal is failing: a full or
read-only disk, which a restart does not fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:  # pragma: no cover - depends on the machine
    from systemd import daemon as _sd_daemon
except ImportError:
    _sd_daemon = None


def backend() -> str:
    """Which implementation sends notifications: "systemd-python" or "socket"."""
    return "socket" if _sd_daemon is None else "systemd-python"


def send_datagram(address: str, message: str) -> bool:
    """The pure implementation: one datagram to a path or an abstract (`@name`) socket."""
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode())
        except OSError:
            return False
    return True


def notify(message: str) -> bool:
    """Send one notify message; True if systemd was there to receive it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if _sd_daemon is not None:
        try:  # it raises where sd_notify(3) returns an error: never let that reach the loop
            return bool(_sd_daemon.notify(message))
        except OSError:
            return False
    return send_datagram(address, message)


def status_line(text: str) -> str:
    """A STATUS= value on one line (systemctl status shows only one)."""
    return " ".join(text.split())


def reloading() -> bool:
    """Tell systemd a reload started (RELOADING=1 with the clock, as notify-reload expects)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


class Watchdog:
    """Pings WATCHDOG=1 at half of WATCHDOG_USEC, called from the loop that must stay alive.

    Only `kick` sends, and only the detection loop calls it after finishing an iteration, so a
    loop that hangs (blocked in a call, or awaiting something that never comes) stops the
    pings even while the rest of the event loop runs; systemd then kills and restarts us.
    """

    def __init__(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.interval_s = int(usec) / 2e6 if enabled else 0.0
        self.pings = 0
        self._next = 0.0

    @property
    def enabled(self) -> bool:
        """True when systemd expects pings from this process."""
        return self.interval_s > 0

    def kick(self) -> None:
        """Call on every loop iteration; sends a ping only when one is due."""
        if self.interval_s <= 0:
            return
        now = time.monotonic()
        if now >= self._next:
            notify("WATCHDOG=1")
            self.pings += 1
            self._next = now + self.interval_s


RUNTIME_DIR_ENV = "LINESIDE_RUNTIME_DIR"
DEFAULT_RUNTIME_DIR = Path("/run/lineside")
DEFAULT_STATE_DIR = Path("/var/lib/lineside")
HEARTBEAT_NAME = "heartbeat.json"

# `lineside health` exit codes. Not 2: argparse's usage error, and Docker reserves it.
HEALTH_OK = 0
HEALTH_DEAD = 1
HEALTH_CANNOT_WRITE = 3
HEALTH_CODES = {
    HEALTH_OK: "alive: the loop made progress lately and the journal writes",
    HEALTH_DEAD: "not running, or the detection loop stalled (heartbeat missing or too old)",
    HEALTH_CANNOT_WRITE: "alive, but its state directory cannot be written (journal failing)",
}


def _runtime_candidates() -> list[Path]:
    """Runtime directories in the order they are tried: ours, systemd's, the default."""
    found = [os.environ.get(RUNTIME_DIR_ENV, "")]
    found += os.environ.get("RUNTIME_DIRECTORY", "").split(":")  # RuntimeDirectory=, maybe many
    return [Path(d) for d in found if d] + [DEFAULT_RUNTIME_DIR]


def runtime_dir(state_dir: Path) -> Path:
    """Where the heartbeat goes: the first writable runtime directory, else `state_dir`."""
    for candidate in _runtime_candidates():
        if candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return state_dir


def heartbeat_files(state_dir: Path = DEFAULT_STATE_DIR) -> list[Path]:
    """Where `lineside health` looks for a heartbeat, in order."""
    return [d / HEARTBEAT_NAME for d in (*_runtime_candidates(), state_dir)]


class Heartbeat:
    """`beat()` from the loop; `run()` as a task writes the file every `interval_s`."""

    def __init__(
        self, path: Path, interval_s: float = 5.0, extra: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.extra = extra
        self.last_progress = (
            time.time()
        )  # a start is progress: never "stalled" before the first sample
        self.write_errors = 0

    def beat(self) -> None:
        """The loop made progress (no I/O)."""
        self.last_progress = time.time()

    def write(self) -> None:
        """Replace the file atomically with the current state."""
        state = {"loop_ts": self.last_progress, "pid": os.getpid(), **(self.extra or dict)()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.path)

    async def run(self) -> None:
        """Write the heartbeat until cancelled; a failing disk only counts errors."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.write)
            except OSError:
                self.write_errors += 1
            await asyncio.sleep(self.interval_s)

    def remove(self) -> None:
        """Remove the file at a clean exit, so a stopped agent never looks healthy."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def check(path: Path, max_age_s: float, now: float | None = None) -> tuple[bool, str]:
    """Whether the agent behind the heartbeat at `path` is alive, and a one-line reason."""
    code, reason = health(path, max_age_s, now)
    return code != HEALTH_DEAD, reason


def health(path: Path, max_age_s: float, now: float | None = None) -> tuple[int, str]:
    """The heartbeat at `path` judged: one of `HEALTH_CODES` and a one-line reason."""
    now = time.time() if now is None else now
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        loop_ts = float(state.get("loop_ts", 0.0))
    except FileNotFoundError:
        return HEALTH_DEAD, f"no heartbeat at {path}: the agent is not running or not started yet"
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        return HEALTH_DEAD, f"heartbeat {path} unreadable: {exc}"
    code, reason = _judged(state, now - loop_ts, max_age_s)
    lines = state.get("lines")
    if isinstance(lines, dict) and lines:  # each line's model or learning, as STATUS= says
        reason += "; lines: " + ", ".join(f"{name} {what}" for name, what in lines.items())
    return code, reason


def _judged(state: dict[str, Any], age: float, max_age_s: float) -> tuple[int, str]:
    if age > max_age_s:
        return HEALTH_DEAD, f"detection loop stalled: last progress {age:.0f} s ago"
    if not state.get("journal_ok", True):
        error = state.get("journal_error") or "unknown error"
        return HEALTH_CANNOT_WRITE, (
            f"cannot write: the loop is alive (last progress {age:.1f} s ago) but journal "
            f"NOT writing to {state.get('state_dir', 'the state directory')} ({error}); "
            "free space or fix its permissions, a restart does not help"
        )
    return HEALTH_OK, f"ok: last progress {age:.1f} s ago, journal ok"
