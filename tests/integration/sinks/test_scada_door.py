"""Connections before login: idle sockets, the handshake deadline, the per-address cap.

The attackers are raw TCP sockets on loopback, from the same address as the legitimate
client (the hardest case: a per-address cap alone cannot tell them apart).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.ua.ua_binary import uatcp_to_binary

from agent.config.opcua import OpcUaConfig, ScadaLimits
from agent.sinks.scada import ScadaServer
from tests.helpers import free_port, wait_for
from tests.scada_helpers import PASSWORDS, client_certificate, scada_config, secure_client, trust


@asynccontextmanager
async def serving(config: OpcUaConfig) -> AsyncIterator[ScadaServer]:
    server = ScadaServer(config, "line-a", [], [], "1", threshold=1.0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def hello(endpoint: str) -> bytes:
    """An OPC-UA Hello message, as any client sends first."""
    message = ua.Hello()
    message.EndpointUrl = endpoint
    return uatcp_to_binary(ua.MessageType.Hello, message)


def raw_socket(port: int, source: str = "127.0.0.1", first: bytes = b"") -> socket.socket:
    """A plain TCP connection to the server, sending `first` (or nothing) and then idling."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    if first:
        sock.sendall(first)
    sock.setblocking(False)
    return sock


def is_closed(sock: socket.socket) -> bool:
    """True once the server has closed this connection (reads past any answer it sent)."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


async def discovery_channel(endpoint: str) -> Client:
    """A client holding an open unencrypted channel (allowed: GetEndpoints needs it), idle."""
    client = Client(endpoint, timeout=5)
    await client.connect_socket()
    await client.send_hello()
    await client.open_secure_channel()
    return client


@pytest.mark.parametrize("per_address", [4, 16])  # the default, and none that would help
async def test_idle_connections_do_not_lock_out_a_trusted_client(
    tmp_path: Path, per_address: int
) -> None:
    limits = ScadaLimits(handshake_timeout_s=30.0, max_connections_per_address=per_address)
    config = scada_config(tmp_path, free_port(), limits=limits)
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    port = int(config.endpoint.rsplit(":", 1)[1].split("/")[0])
    async with serving(config) as server:
        idle = [raw_socket(port) for _ in range(10)]
        idle += [raw_socket(port, first=hello(config.endpoint)) for _ in range(6)]
        held = [await discovery_channel(config.endpoint) for _ in range(4)]
        await asyncio.sleep(0.2)
        assert len(server.connections.slots) == per_address  # every slot it may have is held
        logins = 0
        for _ in range(7):  # as many tries as the observed attack defeated
            await asyncio.sleep(0.5)  # at the pace password checks are allowed per certificate
            client = await secure_client(config.endpoint, cert, key, uri, "ada", PASSWORDS["ada"])
            async with client:
                ns = await client.get_namespace_index("urn:lineside")
                assert await client.get_node(f"ns={ns};s=Lines/line-a/Threshold").read_value()
                logins += 1
        assert logins == 7
        assert server.connections.evicted >= 1  # an idle socket was closed to make room
        assert server.connections.refused == 0
        assert len(server.connections.slots) <= config.limits.max_connections
        for sock in idle:
            sock.close()
        for client in held:
            client.disconnect_socket()


async def test_a_connection_without_a_session_is_closed_at_the_deadline(tmp_path: Path) -> None:
    config = scada_config(tmp_path, free_port(), limits=ScadaLimits(handshake_timeout_s=1.0))
    cert, key, uri = client_certificate(tmp_path / "client", "hmi")
    trust(config, cert)
    port = int(config.endpoint.rsplit(":", 1)[1].split("/")[0])
    async with serving(config) as server:
        silent = raw_socket(port)
        greeted = raw_socket(port, first=hello(config.endpoint))
        discovery = await discovery_channel(config.endpoint)
        logged_in = await secure_client(config.endpoint, cert, key, uri, "ada", PASSWORDS["ada"])
        async with logged_in:
            await asyncio.sleep(0.3)
            assert not is_closed(silent) and not is_closed(greeted)
            await wait_for(lambda: is_closed(silent) and is_closed(greeted), timeout=3.0)
            await wait_for(lambda: not discovery.uaclient.protocol.transport, timeout=3.0)
            assert server.connections.expired >= 3
            # the logged-in client is past the deadline and keeps its session
            ns = await logged_in.get_namespace_index("urn:lineside")
            assert await logged_in.get_node(f"ns={ns};s=Lines/line-a/Threshold").read_value()
        silent.close()
        greeted.close()


async def test_one_address_holds_at_most_its_share_of_untrusted_connections(
    tmp_path: Path,
) -> None:
    limits = ScadaLimits(max_connections_per_address=3, handshake_timeout_s=30.0)
    config = scada_config(tmp_path, free_port(), limits=limits)
    port = int(config.endpoint.rsplit(":", 1)[1].split("/")[0])
    async with serving(config) as server:
        first = [raw_socket(port, source="127.0.0.2") for _ in range(3)]
        others = [raw_socket(port, source="127.0.0.3") for _ in range(2)]
        await wait_for(lambda: len(server.connections.slots) == 5, timeout=3.0)
        later = [raw_socket(port, source="127.0.0.2") for _ in range(2)]
        await wait_for(lambda: is_closed(first[0]) and is_closed(first[1]), timeout=3.0)
        await asyncio.sleep(0.2)
        # the oldest two of 127.0.0.2 made room for its newest; 127.0.0.3 lost nothing
        assert not any(is_closed(s) for s in [first[2], *later, *others])
        by_address: dict[str, int] = {}
        for slot in server.connections.slots:
            by_address[slot.address] = by_address.get(slot.address, 0) + 1
        assert by_address == {"127.0.0.2": 3, "127.0.0.3": 2}
        assert server.connections.evicted == 2
        for sock in first + others + later:
            sock.close()


async def test_an_oversized_chunk_closes_the_connection_before_it_is_buffered(
    tmp_path: Path,
) -> None:
    config = scada_config(tmp_path, free_port(), limits=ScadaLimits(handshake_timeout_s=30.0))
    port = int(config.endpoint.rsplit(":", 1)[1].split("/")[0])
    async with serving(config) as server:
        sock = raw_socket(port)
        # a Hello header claiming a 1 GB body, then 200 kB of it
        sock.setblocking(True)
        sock.sendall(b"HELF" + struct.pack("<I", 1 << 30))
        try:
            for _ in range(50):
                sock.sendall(b"\0" * 4096)
        except ConnectionError:
            pass  # closed while we were still sending
        sock.setblocking(False)
        await wait_for(lambda: is_closed(sock), timeout=3.0)
        await wait_for(lambda: not server.connections.slots, timeout=3.0)
        sock.close()
