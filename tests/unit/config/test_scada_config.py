"""The [opcua] section: secure defaults, and every mistake named with its field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.passwords import hash_password, parse_hash, verify_password
from agent.errors import ConfigError
from tests.config_helpers import SITE, TAG_MAP

HASH = hash_password("correct horse")


def site_with(tmp_path: Path, opcua: str) -> Path:
    text = SITE.read_text()
    start, end = text.index("[opcua]"), text.index("[journal]")
    text = text[:start] + opcua + "\n" + text[end:]
    text = text.replace('"../plc/simulated-extruder.toml"', f'"{TAG_MAP}"')
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, opcua: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(site_with(tmp_path, opcua))
    return info.value


USER = f'[[opcua.user]]\nname = "ada"\nrole = "viewer"\npassword_hash = "{HASH}"\n'


def test_defaults_are_secure(tmp_path: Path) -> None:
    config = load_config(site_with(tmp_path, "[opcua]\n" + USER)).opcua
    assert config.security == "secure" and not config.serves_none
    assert config.security_policies == ("Basic256Sha256", "Aes256_Sha256_RsaPss")
    assert config.security_modes == ("Sign", "SignAndEncrypt")
    assert not config.allow_anonymous
    assert config.endpoint == "opc.tcp://0.0.0.0:4840/lineside"
    # the PKI lives beside the journal (the state directory), not in the repo
    site = load_config(site_with(tmp_path, "[opcua]\n" + USER))
    assert config.pki_dir == site.journal_path.parent / "opcua-pki"
    assert config.users[0].name == "ada" and verify_password(
        "correct horse", config.users[0].password
    )


def test_the_door_limits_default_and_load(tmp_path: Path) -> None:
    limits = load_config(site_with(tmp_path, "[opcua]\n" + USER)).opcua.limits
    assert (limits.max_subscriptions_per_session, limits.max_monitored_items_per_session) == (
        4, 5000)  # fmt: skip
    assert (limits.handshake_timeout_s, limits.max_connections_per_address) == (3.0, 4)
    assert limits.reserved_for_trusted == 4
    text = (
        "[opcua]\n" + USER + "[opcua.limits]\nmax_subscriptions_per_session = 2\n"
        "max_monitored_items_per_session = 100\nhandshake_timeout_s = 1\n"
        "max_connections_per_address = 8\nreserved_for_trusted = 0\n"
    )
    limits = load_config(site_with(tmp_path, text)).opcua.limits
    assert (limits.max_subscriptions_per_session, limits.max_monitored_items_per_session) == (
        2, 100)  # fmt: skip
    assert (limits.handshake_timeout_s, limits.max_connections_per_address) == (1.0, 8)
    assert limits.reserved_for_trusted == 0


def test_port_may_be_given_apart(tmp_path: Path) -> None:
    text = '[opcua]\nendpoint = "opc.tcp://10.0.0.5/lineside"\nport = 4855\n' + USER
    assert load_config(site_with(tmp_path, text)).opcua.endpoint == (
        "opc.tcp://10.0.0.5:4855/lineside"
    )


@pytest.mark.parametrize(
    ("opcua", "field", "words"),
    [
        ("[opcua]\n", "opcua.user", "nobody can log in"),
        ('[opcua]\nsecurity = "open"\n' + USER, "opcua.security", "'open' is not one of"),
        ('[opcua]\nsecurity = "none"\n' + USER, "opcua.user", "clear text"),
        ('[opcua]\nsecurity_policies = ["Basic128Rsa15"]\n' + USER, "opcua.security_policies",
         "'Basic128Rsa15' is not one of"),
        ('[opcua]\nsecurity_modes = []\n' + USER, "opcua.security_modes", "non-empty list"),
        ('[opcua]\nsecurity_modes = ["None"]\n' + USER, "opcua.security_modes", "not one of"),
        ('[opcua]\nendpoint = "http://host:4840"\n' + USER, "opcua.endpoint", "opc.tcp://"),
        ('[opcua]\nendpoint = "opc.tcp://host/lineside"\n' + USER, "opcua.endpoint", "no port"),
        ('[opcua]\nendpoint = "opc.tcp://host:99999/x"\n' + USER, "opcua.endpoint", "1..65535"),
        ('[opcua]\nendpoint = "opc.tcp://host:4840/x"\nport = 4841\n' + USER, "opcua.port",
         "differs"),
        ('[opcua]\ncertificate = "nowhere.der"\n' + USER, "opcua.certificate", "go together"),
        ('[opcua]\ncertificate = "nowhere.der"\nprivate_key = "nowhere.pem"\n' + USER,
         "opcua.certificate", "does not exist"),
        ('[opcua]\nallow_anonymus = true\n' + USER, "opcua.allow_anonymus", "allow_anonymous"),
        ("[opcua]\n" + USER.replace('"viewer"', '"admin"'), "opcua.user[0].role",
         "'admin' is not one of"),
        ("[opcua]\n" + USER.replace(HASH, "hunter2"), "opcua.user[0].password_hash",
         "is not a scrypt hash"),
        ("[opcua]\n" + USER.replace(HASH, HASH.rsplit("$", 1)[0] + "$AAAA"),
         "opcua.user[0].password_hash", "too short"),
        ("[opcua]\n" + USER.replace(HASH, HASH.rsplit("$", 1)[0] + "$A"),
         "opcua.user[0].password_hash", "base64"),
        ("[opcua]\n" + USER.replace("n=16384", "n=1000"), "opcua.user[0].password_hash",
         "power of two"),
        ("[opcua]\n" + USER.replace('password_hash = ', "# "), "opcua.user[0].password_hash",
         "is required"),
        ("[opcua]\n" + USER + USER, "opcua.user[1].name", "listed twice"),
        ("[opcua]\n" + USER.replace('"ada"', '"a b"'), "opcua.user[0].name", "not a user name"),
        ("[opcua]\n" + USER + "[opcua.limits]\nmax_sessions = 0\n", "opcua.limits.max_sessions",
         "outside 1..1000"),
        ("[opcua]\n" + USER + "[opcua.limits]\nmax_sessions = 40\n", "opcua.limits.max_sessions",
         "exceeds max_connections"),
        ("[opcua]\n" + USER + "[opcua.limits]\nlockout_s = -1\n", "opcua.limits.lockout_s",
         "greater than 0"),
        ("[opcua]\n" + USER + "[opcua.limits]\nmax_sesions = 4\n", "opcua.limits.max_sesions",
         "max_sessions"),
        ("[opcua]\n" + USER + "[opcua.limits]\nmax_subscriptions_per_session = 20\n",
         "opcua.limits.max_subscriptions_per_session", "exceeds max_subscriptions 16"),
        ("[opcua]\n" + USER + "[opcua.limits]\nmax_subscriptions_per_session = 0\n",
         "opcua.limits.max_subscriptions_per_session", "outside 1..1000"),
        ("[opcua]\n" + USER + "[opcua.limits]\nmax_monitored_items_per_session = 0\n",
         "opcua.limits.max_monitored_items_per_session", "outside 1..1000000"),
        ("[opcua]\n" + USER + "[opcua.limits]\nhandshake_timeout_s = 0.1\n",
         "opcua.limits.handshake_timeout_s", "outside 0.5..60"),
        ("[opcua]\n" + USER + "[opcua.limits]\nhandshake_timeout_s = -3\n",
         "opcua.limits.handshake_timeout_s", "greater than 0"),
        ("[opcua]\n" + USER + '[opcua.limits]\nhandshake_timeout_s = "3"\n',
         "opcua.limits.handshake_timeout_s", "must be a float"),
        ("[opcua]\n" + USER + "[opcua.limits]\nmax_connections_per_address = 0\n",
         "opcua.limits.max_connections_per_address", "outside 1..1000"),
        ("[opcua]\n" + USER + "[opcua.limits]\nreserved_for_trusted = 8\n",
         "opcua.limits.reserved_for_trusted", "keep it below max_sessions"),
        ("[opcua]\n" + USER + "[opcua.limits]\nreserved_for_trusted = -1\n",
         "opcua.limits.reserved_for_trusted", "outside 0..999"),
    ],
)  # fmt: skip
def test_bad_opcua_settings_name_the_field(
    tmp_path: Path, opcua: str, field: str, words: str
) -> None:
    error = error_of(tmp_path, opcua)
    assert error.field == field
    assert words in str(error)


@pytest.mark.parametrize(
    ("opcua", "fix"),
    [
        ("[opcua]\n", "lineside hash-password"),
        ('[opcua]\nsecurity = "none"\n' + USER, 'security = "secure"'),
        ("[opcua]\n" + USER.replace(HASH, "hunter2"), "lineside hash-password"),
        ("[opcua]\n" + USER + USER, "one [[opcua.user]]"),
    ],
)
def test_the_fix_is_named(tmp_path: Path, opcua: str, fix: str) -> None:
    assert fix in error_of(tmp_path, opcua).fix


def test_hash_format_round_trip_and_cost_in_the_hash() -> None:
    parsed = parse_hash(HASH)
    assert (parsed.n, parsed.r, parsed.p) == (16384, 8, 1) and len(parsed.salt) == 16
    assert hash_password("correct horse") != HASH  # salted: a new hash every time
    assert not verify_password("correct hors", HASH)
