"""sd_notify without libsystemd: READY=1, STATUS=, WATCHDOG=1 over the notify socket.

systemd-python's `systemd.daemon.notify` is used when installed; otherwise the datagram is
sent by hand (the protocol is one AF_UNIX datagram of newline-separated KEY=VALUE lines).
Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time


def notify(message: str) -> bool:
    """Send one notify message; True if systemd was there to receive it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    try:
        from systemd import daemon
    except ImportError:
        pass
    else:
        return bool(daemon.notify(message))
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode())
        except OSError:
            return False
    return True


class Watchdog:
    """Pings WATCHDOG=1 at half of WATCHDOG_USEC, called from the loop that must stay alive."""

    def __init__(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.interval_s = int(usec) / 2e6 if enabled else 0.0
        self._next = 0.0

    def kick(self) -> None:
        """Call on every loop iteration; sends a ping only when one is due."""
        if self.interval_s <= 0:
            return
        now = time.monotonic()
        if now >= self._next:
            notify("WATCHDOG=1")
            self._next = now + self.interval_s
