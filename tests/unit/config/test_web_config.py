"""`[web]` in the site config: off by default, its defaults, and each bad input named."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.passwords import hash_password
from agent.config.web import DEFAULT_PORT
from tests.config_helpers import FIRMWARE, SITE, error_of, write_site

USER = f"""
[[opcua.user]]
name = "viewer"
role = "viewer"
password_hash = "{hash_password("pw")}"
"""


def site_with(tmp_path: Path, web: str, users: bool = True) -> Path:
    return write_site(tmp_path, SITE.read_text() + (USER if users else "") + web)


def test_no_web_table_means_no_page() -> None:
    assert load_config(SITE).web is None


def test_web_defaults_to_loopback(tmp_path: Path) -> None:
    web = load_config(site_with(tmp_path, "[web]\n")).web
    assert web is not None
    assert (web.bind, web.port, web.session_h, web.max_clients) == (
        "127.0.0.1",
        DEFAULT_PORT,
        8,
        16,
    )


def test_the_example_plant_documents_web() -> None:
    web = load_config(FIRMWARE / "sites" / "example-plant.toml").web
    assert web is not None and web.bind == "127.0.0.1"


@pytest.mark.parametrize(
    ("web", "field", "words"),
    [
        ('[web]\nbind = "localhost"\n', "web.bind", "not an IP address"),
        ("[web]\nport = 70000\n", "web.port", "1..65535"),
        ("[web]\nsession_h = 0\n", "web.session_h", "(0, 168]"),
        ("[web]\nmax_clients = 0\n", "web.max_clients", "1..256"),
        ("[web]\nlisten = 1\n", "web", "listen"),
    ],
)
def test_a_bad_web_field_is_named_with_its_fix(
    tmp_path: Path, web: str, field: str, words: str
) -> None:
    error = error_of(site_with(tmp_path, web))
    assert error.field.startswith(field) or field in str(error)
    assert words in str(error)


def test_web_without_any_opcua_user_says_how_to_add_one(tmp_path: Path) -> None:
    error = error_of(site_with(tmp_path, "[web]\n", users=False))
    assert "[[opcua.user]]" in error.problem and "hash-password" in error.fix
