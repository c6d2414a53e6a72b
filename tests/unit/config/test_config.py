"""Site configs and tag maps: every mistake names its field and the fix."""

from __future__ import annotations

from pathlib import Path

from agent.config import load_config, load_tag_map
from agent.paths import firmware_configs
from tests.config_helpers import SITE, TAG_MAP, error_of, write_site


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
