"""The [explain] section and the failure-mode catalogue: bad input names the field and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.catalogue import load_catalogue
from agent.errors import ConfigError
from agent.paths import firmware_configs

SITE = firmware_configs() / "sites" / "demo-extruder.toml"
UP = 'symptoms = [{tag = "throughput", direction = "up"}]\n'
CATALOGUE = firmware_configs() / "failure-modes" / "demo-extruder.toml"


def site_with(tmp_path: Path, explain: str) -> Path:
    text = SITE.read_text().split("[explain]")[0]
    text = text.replace('"../plc/', f'"{SITE.parent.parent}/plc/')
    path = tmp_path / "site.toml"
    path.write_text(text + "[explain]\n" + explain)
    return path


def test_demo_site_explains_with_its_catalogue() -> None:
    config = load_config(SITE)
    assert config.explain.mode == "template" and config.explain.language == "en"
    assert len(config.explain.catalogue.modes) >= 5


def test_without_the_section_the_template_explains(tmp_path: Path) -> None:
    path = site_with(tmp_path, "")
    config = load_config(path)
    assert config.explain.enabled and config.explain.mode == "template"
    assert config.explain.catalogue.modes == ()


@pytest.mark.parametrize(
    ("explain", "field", "words"),
    [
        ('language = "fr"\n', "explain.language", "en or zh"),
        ('mode = "gpt"\n', "explain.mode", "template or llm"),
        ('mode = "llm"\n', "explain.model", "lineside-export llm"),
        ('model = "nowhere"\n', "explain.model", "no model.onnx"),
        ("nice = 40\n", "explain.nice", "outside 0..19"),
        ("max_seconds = 5.0\ntimeout_s = 2.0\n", "explain.timeout_s", "must exceed"),
        ("queue = 3\n", "explain.queue", "not a known setting"),
        ("cpu = 4096\n", "explain.cpu", "not available"),
    ],
)
def test_bad_explain_settings_name_the_field(tmp_path, explain, field, words) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(site_with(tmp_path, explain))
    assert caught.value.field == field
    assert words in str(caught.value)


def _catalogue(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "modes.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('[[mode]]\nid = "a"\ncause = "x"\ncheck = "y"\n', "mode[0].symptoms"),
        (
            '[[mode]]\nid = "a"\ncause = "x"\ncheck = "y"\n'
            'symptoms = [{tag = "melt_pressure", direction = "sideways"}]\n',
            "mode[0].symptoms[0].direction",
        ),
        (
            '[[mode]]\nid = "a"\ncause = "x"\ncheck = "y"\n'
            'symptoms = [{tag = "melt_presure", direction = "up"}]\n',
            "mode[0].symptoms[0].tag",
        ),
        (
            '[[mode]]\nid = "a"\ncheck = "y"\n' + UP,
            "mode[0].cause",
        ),
        (
            '[[mode]]\nid = "a"\ncause = "x"\ncheck = "y"\n'
            + UP
            + '[[mode]]\nid = "a"\ncause = "z"\ncheck = "y"\n'
            + UP,
            "mode[1].id",
        ),
    ],
)
def test_bad_catalogue_names_the_field(tmp_path, body, field) -> None:
    tags = {"melt_pressure", "throughput"}
    with pytest.raises(ConfigError) as caught:
        load_catalogue(_catalogue(tmp_path, body), tags)
    assert caught.value.field == field


def test_site_reports_a_catalogue_error_under_explain_catalogue(tmp_path: Path) -> None:
    bad = _catalogue(
        tmp_path,
        '[[mode]]\nid = "a"\ncause = "x"\ncheck = "y"\n'
        'symptoms = [{tag = "nope", direction = "up"}]\n',
    )
    path = site_with(tmp_path, f'catalogue = "{bad}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", "--no-bundle", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "explain.catalogue: mode[0].symptoms[0].tag: 'nope' is not a tag" in result.stderr
