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
health and the pid. `lineside health` exits 0 if it is fresh, 1 otherwise, saying why.
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


DEFAULT_FILE = Path("/var/lib/lineside/heartbeat.json")


class Heartbeat:
    """`beat()` from the loop; `run()` as a task writes the file every `interval_s`."""

    def __init__(
        self, path: Path, interval_s: float = 5.0, extra: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.extra = extra
        self.last_progress = 0.0
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
    """Whether the heartbeat at `path` is fresh, and a one-line reason."""
    now = time.time() if now is None else now
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False, f"no heartbeat at {path}: the agent is not running or not started yet"
    except (OSError, ValueError) as exc:
        return False, f"heartbeat {path} unreadable: {exc}"
    age = now - float(state.get("loop_ts", 0.0))
    if age > max_age_s:
        return False, f"detection loop stalled: last progress {age:.0f} s ago"
    journal = "journal ok" if state.get("journal_ok", True) else "journal NOT writing"
    return True, f"ok: last progress {age:.1f} s ago, {journal}"
