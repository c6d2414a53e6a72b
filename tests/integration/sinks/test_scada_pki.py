"""The server's key and certificate survive a full disk and a torn write.

A full disk is a real one for this process: RLIMIT_FSIZE makes every write past a few bytes
fail with EFBIG, as ENOSPC would, while the test holds it.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncua import Client

from agent.config.opcua import OpcUaConfig
from agent.errors import StartupError
from agent.sinks.scada import ScadaServer
from agent.sinks.scada.pki import ensure_server_certificate
from tests.helpers import free_port
from tests.scada_helpers import PASSWORDS, client_certificate, scada_config, secure_client, trust

URI = "urn:lineside:server"


@contextlib.contextmanager
def disk_full_after(size: int) -> Iterator[None]:
    """Writes of files beyond `size` bytes fail (EFBIG) while this is held."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


async def log_in(config: OpcUaConfig, tmp_path: Path) -> float:
    """Start the server, log in over SignAndEncrypt, read the threshold."""
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    server = ScadaServer(config, "line-a", [], [], "1", threshold=1.0)
    await server.start()
    try:
        client: Client = await secure_client(config.endpoint, cert, key, uri, "ada",
                                             PASSWORDS["ada"])  # fmt: skip
        async with client:
            ns = await client.get_namespace_index("urn:lineside")
            value = await client.get_node(f"ns={ns};s=Lines/line-a/Threshold").read_value()
            return float(value)
    finally:
        await server.stop()


async def test_a_first_start_on_a_full_disk_leaves_nothing_half_written(tmp_path: Path) -> None:
    config = scada_config(tmp_path, free_port())
    with disk_full_after(64), pytest.raises(StartupError) as info:
        ensure_server_certificate(config, URI)
    assert str(config.private_key_path) in str(info.value) and "free space" in str(info.value)
    own = config.private_key_path.parent
    assert list(own.iterdir()) == []  # no 0-byte key, no temporary file
    # the disk is freed: the next start generates the pair and serves
    assert await log_in(config, tmp_path) == 1.0


TORN_PEM = b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"


@pytest.mark.parametrize("content", [b"", TORN_PEM, b"\x00" * 700])
async def test_a_key_that_does_not_parse_is_set_aside_and_regenerated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    config = scada_config(tmp_path, free_port())
    ensure_server_certificate(config, URI)
    old_cert = config.certificate_path.read_bytes()
    config.private_key_path.write_bytes(content)  # what a full disk or a power cut left
    caplog.set_level(logging.WARNING, logger="agent.sinks.scada.pki")
    assert await log_in(config, tmp_path) == 1.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("server key" in w and "does not parse" in w for w in warnings), warnings
    kept = config.private_key_path.with_name(config.private_key_path.name + ".unreadable")
    assert kept.read_bytes() == content  # nothing lost: the old file is kept for a look
    assert config.certificate_path.read_bytes() != old_cert  # a new key needs a new certificate
    assert config.private_key_path.stat().st_mode & 0o077 == 0


async def test_a_certificate_that_does_not_parse_is_regenerated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = scada_config(tmp_path, free_port())
    ensure_server_certificate(config, URI)
    key = config.private_key_path.read_bytes()
    config.certificate_path.write_bytes(b"")
    caplog.set_level(logging.WARNING, logger="agent.sinks.scada.pki")
    assert await log_in(config, tmp_path) == 1.0
    assert any("server certificate" in r.getMessage() for r in caplog.records)
    assert config.private_key_path.read_bytes() == key  # the good key is kept
    assert len(config.certificate_path.read_bytes()) > 500


def test_an_operators_own_key_that_does_not_parse_stops_the_start_naming_the_field(
    tmp_path: Path,
) -> None:
    cert, _, _ = client_certificate(tmp_path / "own", "server")
    key = tmp_path / "own" / "broken.pem"
    key.write_bytes(b"")
    config = scada_config(tmp_path, free_port(), certificate=cert, private_key=key)
    with pytest.raises(StartupError, match=r"opcua\.private_key") as info:
        ensure_server_certificate(config, URI)
    assert "fix:" in str(info.value)
    assert key.read_bytes() == b""  # never overwritten
