"""Logins before trust: the unencrypted channel, the token policy, lockout per certificate.

Every attacker here is a real asyncua client on loopback: one that opens the unencrypted
discovery channel and logs in over it anyway, one with a certificate the server does not
trust, one with a trusted certificate guessing a colleague's password.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import UaError

from agent.config.opcua import OpcUaConfig, ScadaLimits
from agent.sinks.scada import ScadaServer
from tests.helpers import free_port
from tests.scada_helpers import PASSWORDS, client_certificate, scada_config, secure_client, trust

SECURITY_NONE = "http://opcfoundation.org/UA/SecurityPolicy#None"


@asynccontextmanager
async def serving(config: OpcUaConfig) -> AsyncIterator[ScadaServer]:
    server = ScadaServer(config, "line-a", [], [], "1", threshold=1.0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.INFO, logger="lineside.audit")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "lineside.audit"]


async def login_over_none(endpoint: str, token: Any) -> str:
    """Open the unencrypted channel, create a session and activate it; the refusal's text."""
    raw = Client(endpoint, timeout=5)
    await raw.connect_socket()
    try:
        await raw.send_hello()
        await raw.open_secure_channel()
        session = ua.CreateSessionParameters()
        session.ClientDescription = ua.ApplicationDescription(
            ApplicationUri="urn:raw", ApplicationType=ua.ApplicationType.Client
        )
        session.EndpointUrl, session.SessionName = endpoint, "raw"
        session.RequestedSessionTimeout, session.ClientNonce = 60_000, os.urandom(32)
        await raw.uaclient.create_session(session)
        activate = ua.ActivateSessionParameters(UserIdentityToken=token, LocaleIds=["en"])
        with pytest.raises(UaError) as refusal:
            await raw.uaclient.activate_session(activate)
    finally:
        raw.disconnect_socket()
    return repr(refusal.value)


def password_token(user: str, password: str) -> ua.UserNameIdentityToken:
    return ua.UserNameIdentityToken(PolicyId="username", UserName=user, Password=password.encode())


async def test_a_login_over_the_unencrypted_channel_is_refused_before_its_password(
    tmp_path: Path, audit: Callable[[], list[str]]
) -> None:
    config = scada_config(tmp_path, free_port(), allow_anonymous=True)  # lockout after 3
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    async with serving(config) as server:
        answers = [await login_over_none(config.endpoint, password_token("ada", "guess"))
                   for _ in range(5)]  # fmt: skip
        answers.append(await login_over_none(config.endpoint, password_token("ada", "")))
        answers.append(await login_over_none(config.endpoint, ua.AnonymousIdentityToken()))
        assert all("BadSecurityPolicyRejected" in a for a in answers), answers
        assert server.users.failures == {}  # nothing counted toward a lockout
        assert server.login_failures == len(answers)  # but each refusal is counted
        # the right password over SignAndEncrypt still works: the name was never locked
        async with await secure_client(config.endpoint, cert, key, uri, "ada", PASSWORDS["ada"]):
            pass
    messages = audit()
    refusals = [m for m in messages if "over an unsecured channel" in m]
    assert len(refusals) == 7 and "user 'ada' from 127.0.0.1" in refusals[0]
    assert not any("wrong password" in m or "locked out" in m for m in messages)
    assert "login: user ada (viewer)" in messages


async def test_with_security_none_enabled_a_password_is_still_never_taken_unencrypted(
    tmp_path: Path, audit: Callable[[], list[str]]
) -> None:
    config = scada_config(tmp_path, free_port(), security="secure+none", allow_anonymous=True)
    async with serving(config) as server:
        answer = await login_over_none(config.endpoint, password_token("ada", PASSWORDS["ada"]))
        assert "BadIdentityTokenRejected" in answer
        assert server.users.failures == {}
        endpoints = await server.server.get_endpoints()
    assert any("credentials are taken only over a secure channel" in m for m in audit())
    assert not any(m.startswith("login: user ada") for m in audit())
    unsecured = [e for e in endpoints if e.SecurityMode == ua.MessageSecurityMode.None_]
    assert unsecured
    for endpoint in unsecured:  # the None endpoint offers anonymous only
        kinds = {t.TokenType for t in endpoint.UserIdentityTokens}
        assert kinds == {ua.UserTokenType.Anonymous}


async def test_the_user_name_token_names_an_encrypting_policy_on_every_endpoint(
    tmp_path: Path,
) -> None:
    config = scada_config(tmp_path, free_port())
    async with serving(config):  # what a client fetches over the discovery channel
        endpoints = await Client(config.endpoint, timeout=5).connect_and_get_server_endpoints()
    assert {e.SecurityMode for e in endpoints} == {
        ua.MessageSecurityMode.Sign, ua.MessageSecurityMode.SignAndEncrypt}  # fmt: skip
    for endpoint in endpoints:
        tokens = [
            t for t in endpoint.UserIdentityTokens if t.TokenType == ua.UserTokenType.UserName
        ]
        assert len(tokens) == 1
        assert tokens[0].SecurityPolicyUri == endpoint.SecurityPolicyUri != SECURITY_NONE


async def test_guesses_from_one_certificate_never_lock_the_user_out_of_another(
    tmp_path: Path, audit: Callable[[], list[str]]
) -> None:
    config = scada_config(tmp_path, free_port())  # lockout after 3 failures
    intruder = client_certificate(tmp_path / "intruder", "intruder")
    hmi = client_certificate(tmp_path / "hmi", "hmi")
    stranger = client_certificate(tmp_path / "stranger", "stranger")  # not trusted
    trust(config, intruder[0])
    trust(config, hmi[0])
    async with serving(config) as server:
        for _ in range(5):
            client = await secure_client(config.endpoint, *intruder, "ada", "guess")
            with pytest.raises(UaError, match="BadUserAccessDenied"):
                await client.connect()
            client = await secure_client(config.endpoint, *stranger, "ada", "guess")
            with pytest.raises(UaError, match="BadCertificateUntrusted"):
                await client.connect()
        # the intruder's own certificate is locked, even with the right password ...
        client = await secure_client(config.endpoint, *intruder, "ada", PASSWORDS["ada"])
        with pytest.raises(UaError, match="BadUserAccessDenied"):
            await client.connect()
        # ... while ada on her own HMI logs in at once
        async with await secure_client(config.endpoint, *hmi, "ada", PASSWORDS["ada"]) as ok:
            ns = await ok.get_namespace_index("urn:lineside")
            threshold = ok.get_node(f"ns={ns};s=Lines/line-a/Threshold")
            assert await threshold.read_value() == 1.0
        assert [name for name, _ in server.users.failures] == ["ada"]  # one (user, cert) pair
    messages = audit()
    assert messages.count("login refused: user ada: wrong password") == 3  # never the stranger's
    assert sum(m.startswith("certificate refused: CN=stranger") for m in messages) == 5
    assert "login: user ada (viewer)" in messages


async def test_a_certificate_in_create_session_must_be_the_channels_own(tmp_path: Path) -> None:
    config = scada_config(tmp_path, free_port(), limits=ScadaLimits(lockout_after=3))
    hmi = client_certificate(tmp_path / "hmi", "hmi")
    other = client_certificate(tmp_path / "other", "other")
    trust(config, hmi[0])
    trust(config, other[0])
    async with serving(config):
        client = await secure_client(config.endpoint, *hmi, "ada", PASSWORDS["ada"])
        await client.set_security(*client._security[:3], mode=client._security[3])
        await client.connect_socket()
        try:
            await client.send_hello()
            await client.open_secure_channel()
            params = ua.CreateSessionParameters()
            params.ClientDescription = ua.ApplicationDescription(
                ApplicationUri=hmi[2], ApplicationType=ua.ApplicationType.Client
            )
            params.EndpointUrl, params.SessionName = config.endpoint, "swapped"
            params.RequestedSessionTimeout, params.ClientNonce = 60_000, os.urandom(32)
            params.ClientCertificate = other[0].read_bytes()  # not the certificate it signed with
            with pytest.raises(UaError, match="BadCertificateInvalid"):
                await client.uaclient.create_session(params)
        finally:
            client.disconnect_socket()
