"""`[web]`: the agent's local status page (agent.sinks.web), off unless the section is there.

    bind          address to listen on (default 127.0.0.1: the page is for this PC; open it to
                  the plant network only on purpose, e.g. bind = "0.0.0.0")
    port          TCP port (default 8480)
    session_h     how long a login lasts, hours (default 8: one shift)
    max_clients   open connections served at once (default 16); more wait in the backlog

The page is read-only and behind a login with the users of `[[opcua.user]]` (the same names
and scrypt hashes, agent.config.passwords), so `[web]` needs at least one of them.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from agent.config.reader import Section

KEYS = {"bind", "port", "session_h", "max_clients"}
DEFAULT_PORT = 8480


@dataclass(frozen=True)
class WebConfig:
    """Where the status page listens and how long a login holds."""

    bind: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    session_h: float = 8.0
    max_clients: int = 16


def load_web(section: Section) -> WebConfig:
    """The `[web]` table, checked."""
    section.reject_unknown(KEYS)
    bind = section.get("bind", str, WebConfig.bind, fix='e.g. bind = "127.0.0.1"')
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        raise section.error(
            "bind", f"{bind!r} is not an IP address", 'e.g. bind = "127.0.0.1" (this PC only)'
        ) from None
    port = section.get("port", int, DEFAULT_PORT, fix=f"e.g. port = {DEFAULT_PORT}")
    if not 1 <= port <= 65535:
        raise section.error("port", f"must be 1..65535, got {port}", f"e.g. port = {DEFAULT_PORT}")
    session_h = section.get("session_h", float, WebConfig.session_h, fix="e.g. session_h = 8")
    if not (math.isfinite(session_h) and 0 < session_h <= 24 * 7):
        raise section.error("session_h", f"must be in (0, 168] hours, got {session_h}", "e.g. 8")
    clients = section.get("max_clients", int, WebConfig.max_clients, fix="e.g. max_clients = 16")
    if not 1 <= clients <= 256:
        raise section.error("max_clients", f"must be 1..256, got {clients}", "e.g. 16")
    return WebConfig(bind=bind, port=port, session_h=session_h, max_clients=clients)
