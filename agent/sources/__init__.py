"""I/O in: PLC sources that turn registers and nodes into samples, and their factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import PlcConfig
    from agent.sources.base import Source


def make_source(plc: PlcConfig) -> Source:
    """The source a `[[plc]]` table asks for: a Modbus hub or an OPC-UA client."""
    from agent.config import MODBUS_PROTOCOLS

    if plc.protocol in MODBUS_PROTOCOLS:
        from agent.sources.modbus import ModbusHub

        return ModbusHub(plc)
    from agent.sources.opcua import OpcUaSource

    source: Source = OpcUaSource(plc)
    return source
