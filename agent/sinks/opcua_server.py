"""Kept for imports that predate the `agent.sinks.scada` package: the SCADA server lives there."""

from agent.sinks.scada import ScadaServer, value_type
from agent.sinks.scada.limits import AgentCounters

__all__ = ["AgentCounters", "ScadaServer", "value_type"]
