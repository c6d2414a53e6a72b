"""`[record]` in the site config, a site without `[model]`, and each bad `[record]` input."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.bundles.checks import check_bundle_fits
from agent.config import load_config
from agent.config.record import FSYNC_S, MAX_MB, ROTATE_MB, ROTATE_S
from agent.runtime.app import Agent
from tests.config_helpers import SITE, error_of, write_site


def site_with(tmp_path: Path, record: str, model: bool = True) -> Path:
    text = SITE.read_text().split("[explain]")[0]
    if not model:
        start = text.index("[model]")
        text = text[:start] + text[text.index("[detection]") :]
    return write_site(tmp_path, text + record)


def test_no_record_table_means_no_recording() -> None:
    assert load_config(SITE).record is None


def test_record_defaults_sit_beside_the_journal(tmp_path: Path) -> None:
    config = load_config(site_with(tmp_path, "[record]\n"))
    assert config.record is not None
    assert config.record.path == config.journal_path.parent / "recordings"
    assert (config.record.max_mb, config.record.rotate_mb) == (MAX_MB, ROTATE_MB)
    assert (config.record.rotate_s, config.record.fsync_s) == (ROTATE_S, FSYNC_S)


def test_record_settings_and_a_path_relative_to_the_config(tmp_path: Path) -> None:
    text = '[record]\npath = "rec"\nmax_mb = 10\nrotate_mb = 2.5\nrotate_s = 600\nfsync_s = 0.5\n'
    record = load_config(site_with(tmp_path, text)).record
    assert record is not None
    assert record.path == tmp_path.resolve() / "rec"
    assert (record.max_mb, record.rotate_mb, record.rotate_s, record.fsync_s) == (
        10.0, 2.5, 600.0, 0.5,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("max_mb = 0", "record.max_mb", "greater than 0"),
        ("rotate_mb = -1", "record.rotate_mb", "greater than 0"),
        ("rotate_s = nan", "record.rotate_s", "greater than 0"),
        ("fsync_s = inf", "record.fsync_s", "greater than 0"),
        ('fsync_s = "1s"', "record.fsync_s", "must be a float"),
        ("max_mb = 10\nrotate_mb = 20", "record.rotate_mb", "more than max_mb"),
        ("rotate_sec = 60", "record.rotate_sec", "not a known setting"),
        ('path = "site.toml"', "record.path", "not a directory"),
    ],
)
def test_each_bad_record_setting_names_its_field(
    tmp_path: Path, body: str, field: str, words: str
) -> None:
    error = error_of(site_with(tmp_path, f"[record]\n{body}\n"))
    assert error.field == field
    assert words in str(error)
    assert error.fix  # every refusal says what to do


def test_a_site_without_model_loads_for_recording(tmp_path: Path) -> None:
    config = load_config(site_with(tmp_path, "[record]\n", model=False))
    assert config.bundle is None and config.record is not None
    check_bundle_fits(config)  # no bundle named: nothing to check


def test_a_site_without_model_runs_in_commissioning_mode(tmp_path: Path) -> None:
    config = load_config(site_with(tmp_path, "[record]\n", model=False))
    agent = Agent(config)
    assert agent.commissioning is not None and agent.updates is None
    assert agent.recorder is not None  # it records while it learns
