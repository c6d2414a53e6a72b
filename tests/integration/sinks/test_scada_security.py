"""Who gets in: anonymous, `admin`, wrong passwords, lockout, no security, untrusted certs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import UaError
from cryptography import x509

from agent.config.opcua import OpcUaConfig
from agent.sinks.scada import ScadaServer
from tests.helpers import free_port
from tests.scada_helpers import PASSWORDS, client_certificate, scada_config, secure_client, trust

Factory = Callable[..., Any]


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


@pytest.fixture
def client_cert(tmp_path: Path) -> tuple[Path, Path, str]:
    return client_certificate(tmp_path / "client", "hmi")


async def refused(client: Client) -> str:
    """Connect, expecting a refusal; return the error's text."""
    with pytest.raises((UaError, OSError, TimeoutError, asyncio.TimeoutError)) as info:
        await client.connect()
    with contextlib.suppress(Exception):  # the half-open connection may already be gone
        await client.disconnect()
    return f"{type(info.value).__name__}: {info.value}"


async def test_anonymous_is_refused_by_default(
    tmp_path: Path, client_cert: tuple[Path, Path, str], audit: Callable[[], list[str]]
) -> None:
    config = scada_config(tmp_path, free_port())
    trust(config, client_cert[0])
    async with serving(config):
        error = await refused(await secure_client(config.endpoint, *client_cert, None, None))
    assert (
        "BadIdentityTokenInvalid" in error
        or "BadIdentityTokenRejected" in error
        or ("BadUserAccessDenied" in error)
    )


@pytest.mark.parametrize("password", ["", "admin", "anything at all"])
async def test_admin_with_any_password_is_refused(
    tmp_path: Path, client_cert: tuple[Path, Path, str], password: str,
    audit: Callable[[], list[str]],
) -> None:  # fmt: skip
    config = scada_config(tmp_path, free_port())
    trust(config, client_cert[0])
    async with serving(config):
        error = await refused(await secure_client(config.endpoint, *client_cert, "admin", password))
    assert "BadUserAccessDenied" in error
    assert "login refused: user admin: no such user" in audit()


async def test_wrong_password_is_refused_then_the_name_is_locked(
    tmp_path: Path, client_cert: tuple[Path, Path, str], audit: Callable[[], list[str]]
) -> None:
    config = scada_config(tmp_path, free_port())  # lockout after 3 failures
    trust(config, client_cert[0])
    async with serving(config) as server:
        for _ in range(3):
            error = await refused(await secure_client(config.endpoint, *client_cert, "ada", "nope"))
            assert "BadUserAccessDenied" in error
        # locked: now even the right password is refused, without checking it
        error = await refused(
            await secure_client(config.endpoint, *client_cert, "ada", PASSWORDS["ada"])
        )
        assert "BadUserAccessDenied" in error
        assert server.users.login_failures == 4
        # another user is not affected
        async with await secure_client(config.endpoint, *client_cert, "otto", PASSWORDS["otto"]):
            pass
    messages = audit()
    assert messages.count("login refused: user ada: wrong password") == 3
    locked = [m for m in messages if m.startswith("locked out: user ada on certificate")]
    assert locked and locked[0].endswith("for 60 s after 3 failures")
    assert any(m.startswith("login refused: user ada: locked out") for m in messages)
    assert "login: user otto (operator)" in messages
    assert not any(PASSWORDS["ada"] in m or "nope" in m for m in messages)


async def test_no_security_is_refused_unless_enabled(
    tmp_path: Path, client_cert: tuple[Path, Path, str]
) -> None:
    config = scada_config(tmp_path, free_port())
    trust(config, client_cert[0])
    async with serving(config) as server:
        endpoints = await server.server.get_endpoints()
        modes = {e.SecurityMode for e in endpoints}
        assert ua.MessageSecurityMode.None_ not in modes
        assert {e.SecurityPolicyUri.rsplit("#", 1)[1] for e in endpoints} == {
            "Basic256Sha256", "Aes256_Sha256_RsaPss"}  # fmt: skip
        plain = Client(config.endpoint, timeout=5)
        plain.set_user("ada")
        plain.set_password(PASSWORDS["ada"])
        error = await refused(plain)
        assert "No matching endpoints" in error  # asyncua's client sees none to use
        # A client that ignores the endpoints and opens an unsecured channel anyway: asyncua
        # lets it (GetEndpoints needs it), so its login is refused before any password check,
        # and a request in the session it created is refused too.
        raw = Client(config.endpoint, timeout=5)
        await raw.connect_socket()
        try:
            await raw.send_hello()
            await raw.open_secure_channel()
            session = ua.CreateSessionParameters()
            session.ClientDescription = ua.ApplicationDescription(
                ApplicationUri="urn:raw", ApplicationType=ua.ApplicationType.Client
            )
            session.EndpointUrl, session.SessionName = config.endpoint, "raw"
            session.RequestedSessionTimeout, session.ClientNonce = 60_000, os.urandom(32)
            await raw.uaclient.create_session(session)
            token = ua.UserNameIdentityToken(
                PolicyId="username", UserName="ada", Password=PASSWORDS["ada"].encode()
            )
            activate = ua.ActivateSessionParameters(UserIdentityToken=token, LocaleIds=["en"])
            with pytest.raises(UaError) as refusal:
                await raw.uaclient.activate_session(activate)
            read = ua.ReadParameters()
            read.NodesToRead = [
                ua.ReadValueId(
                    NodeId=ua.NodeId(ua.ObjectIds.Server_ServerStatus),
                    AttributeId=ua.AttributeIds.Value,
                )
            ]
            with pytest.raises(UaError) as info:
                await raw.uaclient.read(read)
        finally:
            raw.disconnect_socket()
        assert "BadSecurityPolicyRejected" in repr(refusal.value)
        assert "BadUserAccessDenied" in repr(info.value)

    opened = scada_config(tmp_path / "open", free_port(), security="secure+none",
                          allow_anonymous=True)  # fmt: skip
    async with serving(opened), Client(opened.endpoint, timeout=5) as anonymous:
        ns = await anonymous.get_namespace_index("urn:lineside")
        assert await anonymous.get_node(f"ns={ns};s=Lines/line-a/Threshold").read_value() == 1.0


async def test_untrusted_certificate_is_refused_and_kept_for_review(
    tmp_path: Path, client_cert: tuple[Path, Path, str], audit: Callable[[], list[str]]
) -> None:
    config = scada_config(tmp_path, free_port())  # the client certificate is not trusted
    async with serving(config) as server:
        error = await refused(
            await secure_client(config.endpoint, *client_cert, "ada", PASSWORDS["ada"])
        )
        assert "BadCertificateUntrusted" in error or "Bad" in error
        kept = list(config.rejected_path.glob("*.der"))
        assert len(kept) == 1 and kept[0].name.startswith("hmi_")
        assert kept[0].read_bytes() == client_cert[0].read_bytes()
        assert x509.load_der_x509_certificate(kept[0].read_bytes())
        assert server.certificates.refused == 1
        assert not any(m.startswith("login:") for m in audit())
        # an administrator moves it to trusted/: accepted without a restart
        kept[0].rename(config.trusted_path / kept[0].name)
        async with await secure_client(config.endpoint, *client_cert, "ada", PASSWORDS["ada"]):
            pass
    assert any("certificate refused: CN=hmi" in m for m in audit())
    assert any(m.startswith("login: user ada (viewer)") for m in audit())


async def test_server_certificate_is_generated_once_into_the_state_dir(tmp_path: Path) -> None:
    config = scada_config(tmp_path, free_port())
    async with serving(config):
        pass
    cert = config.certificate_path.read_bytes()
    assert config.private_key_path.stat().st_mode & 0o077 == 0  # the key is private
    async with serving(scada_config(tmp_path, free_port())):
        pass
    assert config.certificate_path.read_bytes() == cert  # reused, not regenerated
    assert str(tmp_path) in str(config.certificate_path)


async def test_the_aes256_policy_and_sign_mode_work(
    tmp_path: Path, client_cert: tuple[Path, Path, str]
) -> None:
    config = scada_config(tmp_path, free_port())
    trust(config, client_cert[0])
    async with serving(config):
        for policy, mode in (("Aes256_Sha256_RsaPss", ua.MessageSecurityMode.SignAndEncrypt),
                             ("Basic256Sha256", ua.MessageSecurityMode.Sign)):  # fmt: skip
            client = await secure_client(config.endpoint, *client_cert, "ada", PASSWORDS["ada"],
                                         policy=policy, mode=mode)  # fmt: skip
            async with client:
                ns = await client.get_namespace_index("urn:lineside")
                threshold = client.get_node(f"ns={ns};s=Lines/line-a/Threshold")
                assert await threshold.read_value() == 1.0


async def test_session_limit_refuses_the_extra_client(
    tmp_path: Path, client_cert: tuple[Path, Path, str]
) -> None:
    from agent.config.opcua import ScadaLimits

    config = scada_config(
        tmp_path, free_port(), limits=ScadaLimits(max_connections=4, max_sessions=2)
    )
    trust(config, client_cert[0])
    async with serving(config):
        first = await secure_client(config.endpoint, *client_cert, "ada", PASSWORDS["ada"])
        second = await secure_client(config.endpoint, *client_cert, "otto", PASSWORDS["otto"])
        async with first, second:
            assert first.session_timeout <= 60_000  # orphaned sessions do not linger
            third = await secure_client(config.endpoint, *client_cert, "ada", PASSWORDS["ada"])
            error = await refused(third)
            assert "BadMaxConnectionsReached" in error or "Bad" in error
