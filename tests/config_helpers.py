"""Helpers for config tests: the shipped config files, and edited copies of the demo site."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.bundles.checks import check_bundle_fits
from agent.config import load_config
from agent.errors import ConfigError
from agent.paths import firmware_configs

FIRMWARE = firmware_configs()
SITE = FIRMWARE / "sites" / "demo-extruder.toml"
TAG_MAP = FIRMWARE / "plc" / "simulated-extruder.toml"
TAG_MAPS = sorted((FIRMWARE / "plc").glob("*.toml"))
NODE_MAPS = sorted((FIRMWARE / "opcua").glob("*.toml"))
SITES = sorted((FIRMWARE / "sites").glob("*.toml"))
CATALOGUES = sorted((FIRMWARE / "failure-modes").glob("*.toml"))


def file_ids(paths: list[Path]) -> list[str]:
    """Test ids for a list of config files: their names."""
    return [p.name for p in paths]


def write_site(tmp_path: Path, text: str | None = None, tag_map: str | None = None) -> Path:
    """A copy of the example site in tmp_path, optionally edited, with its own tag map."""
    (tmp_path / "map.toml").write_text(tag_map if tag_map is not None else TAG_MAP.read_text())
    site = text if text is not None else SITE.read_text()
    site = site.replace('tag_map = "../plc/simulated-extruder.toml"', 'tag_map = "map.toml"')
    path = tmp_path / "site.toml"
    path.write_text(site)
    return path


def error_of(path: Path, check_bundle: bool = False) -> ConfigError:
    """The ConfigError loading the site at `path` raises (and checking its bundle, if asked)."""
    with pytest.raises(ConfigError) as info:
        config = load_config(path)
        if check_bundle:
            check_bundle_fits(config)
    return info.value


def explain_site(tmp_path: Path, explain: str) -> Path:
    """The demo site with `explain` as its whole [explain] section."""
    text = SITE.read_text().split("[explain]")[0]
    text = text.replace('"../plc/', f'"{SITE.parent.parent}/plc/')
    path = tmp_path / "site.toml"
    path.write_text(text + "[explain]\n" + explain)
    return path


def catalogue_file(tmp_path: Path, body: str) -> Path:
    """A failure-mode catalogue file holding `body`."""
    path = tmp_path / "modes.toml"
    path.write_text(body)
    return path
