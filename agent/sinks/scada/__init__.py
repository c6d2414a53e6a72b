"""The SCADA face: Lineside's own OPC-UA server (model, security, users, alarms).

`ScadaServer` is the entry point; see `server.py` for the address space, `security.py` for
certificates, users and roles, `alarms.py` for what of Alarms & Conditions is supported.
"""

from agent.sinks.scada.address_space import value_type
from agent.sinks.scada.server import ScadaServer

__all__ = ["ScadaServer", "value_type"]
