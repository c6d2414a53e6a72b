"""Objects/Plcs: one folder per PLC connection with its comms status, read from its PlcStatus.

    Plcs/<name>/State       String: ok | connecting | down (down if any device of it is down)
               /LastError   String: what is wrong now ('' while every device answers)
               /LastGood    DateTime: when every device had last answered (null before that)
               /Polls, Failures, Reconnects   UInt64 counters since start
               /Alarm       the comms alarm condition of this PLC (see alarms.py)

The sources keep the statuses (agent.ops.comms); the server reads them when it publishes, as
it reads the Agent/ counters, so a poll copies nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import Server, ua

from agent.ops.comms import PlcStatus
from agent.sinks.scada.alarms import AlarmBook
from agent.sinks.scada.model import ModelBuilder

S, T, U64 = ua.VariantType.String, ua.VariantType.DateTime, ua.VariantType.UInt64
NULL_TIME = ua.get_win_epoch()  # OPC-UA's null DateTime (1601-01-01, encoded as 0)


def _time(ts: float | None) -> dt.datetime:
    return NULL_TIME if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


@dataclass(frozen=True)
class PlcVariable:
    """One variable of Plcs/<name>: browse name, type, description, and its value now."""

    name: str
    vtype: ua.VariantType
    text: str
    value: Callable[[PlcStatus], object]


#: Plcs/<name>, in browse order.
PLC_VARIABLES: tuple[PlcVariable, ...] = (
    PlcVariable("State", S, "ok, connecting, or down (not answering for longer than its timeout)",
                lambda p: p.state),
    PlcVariable("LastError", S, "What is wrong with the connection now ('' when nothing)",
                lambda p: p.last_error),
    PlcVariable("LastGood", T, "When every device of it last answered (null before any)",
                lambda p: _time(p.last_good)),
    PlcVariable("Polls", U64, "Polls since start", lambda p: p.polls),
    PlcVariable("Failures", U64, "Failed polls since start (no answer, or an exception)",
                lambda p: p.failures),
    PlcVariable("Reconnects", U64, "Connections opened again after the first",
                lambda p: p.reconnects),
)  # fmt: skip


def plc_path(name: str) -> str:
    """The node id string of a PLC's folder."""
    return f"Plcs/{name}"


async def build_plc_nodes(
    server: Server, ns: int, plcs: Sequence[PlcStatus], alarms: AlarmBook
) -> dict[str, ua.NodeId]:
    """Add Plcs/, a folder of status variables and a comms condition per PLC; return the
    variables' node ids by path."""
    build = ModelBuilder(server.iserver.isession, ns)
    if not plcs:
        return build.nodes
    root = await build.folder(
        server.nodes.objects, "Plcs", "Plcs", "PLC connections and their comms status"
    )
    for plc in plcs:
        base = plc_path(plc.name)
        folder = await build.folder(root, base, plc.name, f"Connection {plc.name}: comms status")
        for var in PLC_VARIABLES:
            await build.variable(
                folder, f"{base}/{var.name}", var.name, var.vtype, var.text, var.value(plc)
            )
        await alarms.add_plc(plc.name, folder)
    return build.nodes


#: The server's write: (path, value, type); it skips values that did not change.
Write = Callable[[str, Any, ua.VariantType], Awaitable[None]]


async def publish_plcs(plcs: Sequence[PlcStatus], write: Write) -> None:
    """Write every PLC's status variables as they are now."""
    for plc in plcs:
        base = plc_path(plc.name)
        for var in PLC_VARIABLES:
            await write(f"{base}/{var.name}", var.value(plc), var.vtype)
