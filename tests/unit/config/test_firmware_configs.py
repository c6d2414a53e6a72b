"""Every shipped register map, node map and site config loads, and says where it comes from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from agent.config import load_config, load_node_map, load_tag_map
from tests.config_helpers import FIRMWARE, NODE_MAPS, SITES, TAG_MAPS, file_ids

# The first comment line of a real device's map names the document its addresses come from.
SOURCE_WORDS = re.compile(r"\b(manual|datasheet|guide|documentation|per)\b", re.IGNORECASE)


def _vendor(path: Path) -> str:
    with path.open("rb") as f:
        return str(tomllib.load(f).get("device", {}).get("vendor", ""))


# Maps of real devices; the built-in simulator's map (vendor "Lineside") has no manual to cite.
DEVICE_MAPS = [p for p in TAG_MAPS if _vendor(p) != "Lineside"]


def _first_comment(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.strip():
            return line.strip() if line.lstrip().startswith("#") else ""
    return ""


def test_there_is_something_to_check() -> None:
    assert len(DEVICE_MAPS) >= 5
    assert NODE_MAPS
    assert any(p.name == "example-plant.toml" for p in SITES)


@pytest.mark.parametrize("path", TAG_MAPS, ids=file_ids(TAG_MAPS))
def test_tag_map_loads(path: Path) -> None:
    assert load_tag_map(path).tags


@pytest.mark.parametrize("path", DEVICE_MAPS, ids=file_ids(DEVICE_MAPS))
def test_tag_map_names_its_source(path: Path) -> None:
    first = _first_comment(path)
    assert first, f"{path.name} must start with a comment naming its manual"
    assert SOURCE_WORDS.search(first), f"{path.name}: first comment names no source: {first!r}"


@pytest.mark.parametrize("path", NODE_MAPS, ids=file_ids(NODE_MAPS))
def test_node_map_loads(path: Path) -> None:
    assert load_node_map(path).tags


@pytest.mark.parametrize("path", SITES, ids=file_ids(SITES))
def test_site_loads(path: Path) -> None:
    config = load_config(path)
    assert config.plcs
    assert config.tags


def test_example_plant_combines_the_three_kinds_of_connection() -> None:
    config = load_config(FIRMWARE / "sites" / "example-plant.toml")
    protocols = {plc.protocol: plc for plc in config.plcs}
    assert set(protocols) == {"modbus-tcp", "modbus-rtu", "opcua"}
    bus = protocols["modbus-rtu"]
    assert bus.serial is not None
    assert len(bus.devices) == 2
    assert len({d.unit for d in bus.devices}) == 2
    meter = next(d for d in bus.devices if d.tag_map.path.name == "eastron-sdm630.toml")
    assert meter.max_registers <= 80  # SDM630: at most 40 values per request
    for device in bus.devices:
        assert bus.timeout_s < device.poll_interval_s
    assert protocols["opcua"].opcua is not None
