"""Build the transport a `[[plc]]` table asks for."""

from __future__ import annotations

from agent.config import PlcConfig
from agent.sources.modbus_tcp import PymodbusTcpTransport
from agent.sources.transport import ModbusTransport


def make_transport(plc: PlcConfig) -> ModbusTransport:
    """The transport for a Modbus connection: TCP, RTU on a serial port, or RTU over TCP."""
    if plc.protocol == "modbus-tcp":
        return PymodbusTcpTransport(plc.host, plc.port, plc.timeout_s, name=plc.name)
    from agent.sources import rtu

    if plc.protocol == "modbus-rtu":
        assert plc.serial is not None
        return rtu.SerialRtuTransport(plc.serial, plc.timeout_s)
    if plc.protocol == "modbus-rtu-over-tcp":
        return rtu.RtuOverTcpTransport(plc.host, plc.port, plc.timeout_s)
    raise ValueError(f"{plc.protocol} is not a Modbus protocol")
