"""PLC connection configs for source tests."""

from __future__ import annotations

from agent.config import DeviceConfig, PlcConfig, TagMap, load_tag_map
from agent.demo.simulator.plc import default_tag_map


def modbus_plc_config(
    port: int, tag_map: TagMap | None = None, timeout: float = 2.0, poll_s: float = 0.5
) -> PlcConfig:
    """One Modbus TCP PLC on loopback with one device, unit 1 (the simulator's map by default)."""
    device = DeviceConfig(
        name="extruder",
        unit=1,
        poll_interval_s=poll_s,
        tag_map=tag_map or load_tag_map(default_tag_map()),
        max_gap=8,
        max_registers=125,
        max_bits=2000,
    )
    return PlcConfig(
        name="test-plc",
        protocol="modbus-tcp",
        host="127.0.0.1",
        port=port,
        serial=None,
        timeout_s=timeout,
        max_backoff_s=0.4,
        poll_interval_s=poll_s,
        devices=(device,),
    )
