"""Every shipped register map, node map and site config loads, and says where it comes from."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent.config import load_config, load_node_map, load_tag_map
from agent.paths import firmware_configs

ROOT = firmware_configs()
TAG_MAPS = sorted((ROOT / "plc").glob("*.toml"))
NODE_MAPS = sorted((ROOT / "opcua").glob("*.toml"))
SITES = sorted((ROOT / "sites").glob("*.toml"))
CATALOGUES = sorted((ROOT / "failure-modes").glob("*.toml"))

# The first comment line of a real device's map names the document its addresses come from.
SOURCE_WORDS = re.compile(r"\b(manual|datasheet|guide|documentation|per)\b", re.IGNORECASE)


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


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


def _check_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "check-config", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_there_is_something_to_check() -> None:
    assert len(DEVICE_MAPS) >= 5
    assert NODE_MAPS
    assert any(p.name == "example-plant.toml" for p in SITES)


@pytest.mark.parametrize("path", TAG_MAPS, ids=_ids(TAG_MAPS))
def test_tag_map_loads(path: Path) -> None:
    assert load_tag_map(path).tags


@pytest.mark.parametrize("path", DEVICE_MAPS, ids=_ids(DEVICE_MAPS))
def test_tag_map_names_its_source(path: Path) -> None:
    first = _first_comment(path)
    assert first, f"{path.name} must start with a comment naming its manual"
    assert SOURCE_WORDS.search(first), f"{path.name}: first comment names no source: {first!r}"


@pytest.mark.parametrize("path", NODE_MAPS, ids=_ids(NODE_MAPS))
def test_node_map_loads(path: Path) -> None:
    assert load_node_map(path).tags


@pytest.mark.parametrize("path", SITES, ids=_ids(SITES))
def test_site_loads(path: Path) -> None:
    config = load_config(path)
    assert config.plcs
    assert config.tags


@pytest.mark.parametrize("path", SITES, ids=_ids(SITES))
def test_check_config_cli_accepts_site_without_bundle(path: Path) -> None:
    result = _check_config("--no-bundle", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: ok (site, " in result.stdout


@pytest.mark.parametrize("path", SITES, ids=_ids(SITES))
def test_check_config_cli_only_complains_about_the_bundle(path: Path, tmp_path: Path) -> None:
    # A copy beside the real map directories, pointing at a bundle that does not exist: the full
    # check must fail on model.bundle and on nothing else.
    for folder in ("plc", "opcua"):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    (tmp_path / "sites").mkdir()
    text, count = re.subn(
        r'(?m)^bundle\s*=\s*"[^"]*"', 'bundle = "no-such-bundle"', path.read_text(), count=1
    )
    assert count == 1, "the site has no model.bundle line"
    copy = tmp_path / "sites" / path.name
    copy.write_text(text)

    result = _check_config(str(copy))

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lineside check-config: {copy}: model.bundle: "), lines[0]
    assert "does not exist" in lines[0]
    assert "Traceback" not in result.stderr


def test_example_plant_combines_the_three_kinds_of_connection() -> None:
    config = load_config(ROOT / "sites" / "example-plant.toml")
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


@pytest.mark.parametrize("path", CATALOGUES, ids=_ids(CATALOGUES))
def test_failure_mode_catalogue_loads_and_checks(path: Path) -> None:
    from agent.config.catalogue import load_catalogue

    assert load_catalogue(path).modes
    result = _check_config(str(path))
    assert result.returncode == 0, result.stderr
    assert "failure-mode catalogue" in result.stdout
