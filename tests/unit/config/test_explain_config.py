"""The [explain] section and the failure-mode catalogue: bad input names the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.catalogue import load_catalogue
from agent.errors import ConfigError
from tests.config_helpers import SITE, catalogue_file, explain_site

UP = 'symptoms = [{tag = "throughput", direction = "up"}]\n'


def test_demo_site_explains_with_its_catalogue() -> None:
    config = load_config(SITE)
    assert config.explain.mode == "template" and config.explain.language == "en"
    assert len(config.explain.catalogue.modes) >= 5


def test_without_the_section_the_template_explains(tmp_path: Path) -> None:
    path = explain_site(tmp_path, "")
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
        load_config(explain_site(tmp_path, explain))
    assert caught.value.field == field
    assert words in str(caught.value)


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
        load_catalogue(catalogue_file(tmp_path, body), tags)
    assert caught.value.field == field
