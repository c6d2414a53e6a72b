"""sd_notify: READY=1, STATUS=, RELOADING=1, STOPPING=1 and WATCHDOG=1 over the notify socket.

systemd-python's `systemd.daemon.notify` is used when installed (the `systemd` extra, or
Debian's python3-systemd); otherwise the datagram is sent by hand: the protocol is one
AF_UNIX datagram of newline-separated KEY=VALUE lines to `$NOTIFY_SOCKET`, a path or, with a
leading `@`, an abstract socket. Outside systemd (`NOTIFY_SOCKET` unset) every call is a
no-op, so the agent runs the same in a container or a terminal.
"""

from __future__ import annotations

import os
import socket
import time

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
