"""A real bundle against a site whose tag map lacks one of its channels, or keeps one out of
detection (`detect = false`, a non-process `role`): refused, named."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.bundles.checks import check_bundle_fits
from agent.bundles.install import install_file
from agent.bundles.refusals import Refusal, UpdateRefused
from agent.bundles.store import ModelStore
from agent.config import load_config
from tests.config_helpers import SITE, TAG_MAP, error_of, write_site


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


def _mark(tag_map: str, name: str, line: str) -> str:
    """The tag map with `line` added to the entry of tag `name`."""
    head = f'name = "{name}"\n'
    assert head in tag_map
    return tag_map.replace(head, head + line + "\n")


def _demo_site(tmp_path: Path, bundle_dir: Path, tag_map: str) -> Path:
    site_text = SITE.read_text().replace("../../.demo/bundle", str(bundle_dir))
    return write_site(tmp_path, site_text, tag_map)


@pytest.mark.parametrize(
    ("line", "shown"),
    [("detect = false", "melt_pressure (detect = false)"),
     ('role = "setpoint"', "melt_pressure (role = 'setpoint')")],
)  # fmt: skip
def test_a_channel_kept_out_of_detection_is_refused(
    tmp_path: Path, bundle_dir: Path, line: str, shown: str
) -> None:
    tag_map = _mark(TAG_MAP.read_text(), "melt_pressure", line)
    error = error_of(_demo_site(tmp_path, bundle_dir, tag_map), True)
    assert error.field == "model.bundle"
    assert shown in error.problem
    assert "retrain without them" in error.fix and "detect = true" in error.fix


def test_a_setpoint_kept_in_detection_explicitly_fits(tmp_path: Path, bundle_dir: Path) -> None:
    tag_map = _mark(TAG_MAP.read_text(), "screw_speed", 'role = "setpoint"\ndetect = true')
    config = load_config(_demo_site(tmp_path, bundle_dir, tag_map))
    check_bundle_fits(config)
    assert config.tags["screw_speed"].role == "setpoint"


def test_install_refuses_a_bundle_modelling_a_status_tag(
    tmp_path: Path, kit: dict[str, Any]
) -> None:
    tag_map = _mark(TAG_MAP.read_text(), "screw_speed", 'role = "status"')
    site = load_config(_demo_site(tmp_path, kit["bundle"], tag_map))
    store_root = tmp_path / "state"
    shutil.copytree(kit["template"], store_root, symlinks=True)
    store = ModelStore(store_root)
    with pytest.raises(UpdateRefused) as refused:
        install_file(kit["v2"], store, kit["trust"], site=site)
    assert refused.value.reason is Refusal.INCOMPATIBLE
    assert "screw_speed (role = 'status')" in refused.value.detail
    assert store.current_version() == 1
