"""A real bundle against a site whose tag map lacks one of its channels: refused, named."""

from __future__ import annotations

from pathlib import Path

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
