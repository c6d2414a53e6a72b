"""Typed site config, PLC tag maps and OPC-UA node maps, read from TOML, validated at load.

Every problem raises `ConfigError` with the dotted path of the field, what is wrong and how to
fix it, e.g. ``plc[0].tag_map: tag[3].type: unknown data type 'flaot32' (fix: ...)``.
Relative paths in a file are relative to that file's directory; unknown keys are refused, so a
typo never silently falls back to a default.
"""

from agent.config.opcua import OpcUaConfig
from agent.config.site import (
    MODBUS_PROTOCOLS,
    DetectionConfig,
    DeviceConfig,
    OpcUaClientConfig,
    PlcConfig,
    SerialSettings,
    SiteConfig,
    default_inter_frame_s,
    load_config,
)
from agent.config.tagmaps import (
    BIT_TABLES,
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    REGISTER_TABLES,
    NodeMap,
    NodeTag,
    Tag,
    TagMap,
    load_node_map,
    load_tag_map,
)

__all__ = [
    "BIT_TABLES",
    "MAX_BITS_PER_READ",
    "MAX_REGISTERS_PER_READ",
    "MODBUS_PROTOCOLS",
    "REGISTER_TABLES",
    "DetectionConfig",
    "DeviceConfig",
    "NodeMap",
    "NodeTag",
    "OpcUaClientConfig",
    "OpcUaConfig",
    "PlcConfig",
    "SerialSettings",
    "SiteConfig",
    "Tag",
    "TagMap",
    "default_inter_frame_s",
    "load_config",
    "load_node_map",
    "load_tag_map",
]
