"""Site configs and tag maps: every mistake names its field and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.bundles.checks import check_bundle_fits
from agent.config import load_config, load_tag_map
from agent.errors import ConfigError
from agent.paths import firmware_configs

SITE = firmware_configs() / "sites" / "demo-extruder.toml"
TAG_MAP = firmware_configs() / "plc" / "simulated-extruder.toml"


def write_site(tmp_path: Path, text: str | None = None, tag_map: str | None = None) -> Path:
    """A copy of the example site in tmp_path, optionally edited, with its own tag map."""
    (tmp_path / "map.toml").write_text(tag_map if tag_map is not None else TAG_MAP.read_text())
    site = text if text is not None else SITE.read_text()
    site = site.replace('tag_map = "../plc/simulated-extruder.toml"', 'tag_map = "map.toml"')
    path = tmp_path / "site.toml"
    path.write_text(site)
    return path


def error_of(path: Path, check_bundle: bool = False) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config = load_config(path)
        if check_bundle:
            check_bundle_fits(config)
    return info.value


def test_shipped_configs_are_valid() -> None:
    config = load_config(SITE)
    assert config.line == "extruder-1"
    assert [t.name for t in config.plcs[0].tags][:2] == ["screw_speed", "throughput"]
    for tag_map in (firmware_configs() / "plc").glob("*.toml"):
        assert load_tag_map(tag_map).tags


def test_missing_bundle_names_model_bundle(tmp_path: Path) -> None:
    path = write_site(tmp_path, SITE.read_text().replace("../../.demo/bundle", "nowhere"))
    error = error_of(path, check_bundle=True)
    assert error.field == "model.bundle"
    assert "does not exist" in str(error)
    assert "lineside-export" in error.fix


def test_unknown_tag_type_names_the_tag_field(tmp_path: Path) -> None:
    broken = TAG_MAP.read_text().replace('type = "int16"', 'type = "flaot16"', 1)
    error = error_of(write_site(tmp_path, tag_map=broken))
    assert error.field == "plc[0].tag_map"
    assert "tag[3].type" in str(error) and "flaot16" in str(error)
    assert "int16" in str(error)  # the message lists what is allowed


def test_overlapping_registers_are_refused(tmp_path: Path) -> None:
    broken = TAG_MAP.read_text().replace("address = 2\n", "address = 1\n", 1)
    error = error_of(write_site(tmp_path, tag_map=broken))
    assert "holding 1 is already used by screw_speed" in str(error)


def test_timeout_must_be_shorter_than_poll(tmp_path: Path) -> None:
    path = write_site(tmp_path, SITE.read_text().replace("timeout_s = 0.5", "timeout_s = 2.0"))
    error = error_of(path)
    assert error.field == "plc[0].poll_interval_s"
    assert "next poll" in error.fix


def test_security_none_must_be_explicit(tmp_path: Path) -> None:
    # Without a security setting the server is secure; "none" must be written out.
    config = load_config(write_site(tmp_path))
    assert config.opcua.security == "secure" and not config.opcua.serves_none
    text = SITE.read_text().replace('security = "secure"', 'security = "open"')
    error = error_of(write_site(tmp_path, text))
    assert error.field == "opcua.security"
    assert '"none" (lab only' in error.fix


def test_wrong_type_says_what_was_given(tmp_path: Path) -> None:
    path = write_site(tmp_path, SITE.read_text().replace("port = 5020", 'port = "5020"'))
    error = error_of(path)
    assert error.field == "plc[0].port"
    assert "must be a int, got str" in error.problem


def test_bundle_channels_must_be_tags(tmp_path: Path, bundle_dir: Path) -> None:
    # Drop melt_pressure from the tag map: the model needs it, the line no longer has it.
    text = TAG_MAP.read_text()
    start = text.index('name = "melt_pressure"') - len("[[tag]]\n")
    end = text.index("[[tag]]", start + 10)
    site_text = SITE.read_text().replace("../../.demo/bundle", str(bundle_dir))
    # The site's failure-mode catalogue names melt_pressure too, and load_config checks that
    # before anyone opens the bundle: take the catalogue out to reach the bundle's check.
    site_text = site_text.replace('catalogue = "demo-extruder"', "")
    error = error_of(write_site(tmp_path, site_text, text[:start] + text[end:]), True)
    assert error.field == "model.bundle"
    assert "melt_pressure" in error.problem


def test_check_config_cli_exit_codes(tmp_path: Path, bundle_dir: Path) -> None:
    good = write_site(tmp_path, SITE.read_text().replace("../../.demo/bundle", str(bundle_dir)))
    ok = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok (site, line extruder-1, 1 connection(s), 10 tags)" in ok.stdout
    bad = write_site(tmp_path, SITE.read_text().replace("unit = 1\n", "unit = 300\n"))
    failed = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 2
    assert "plc[0].unit" in failed.stderr and "Traceback" not in failed.stderr
