"""The OPC-UA client source against a real asyncua server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.node import Node
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.config import OpcUaClientConfig, PlcConfig, load_node_map
from agent.ops.comms import CommsEdge
from agent.sources.opcua import WAITING, OpcUaSource
from agent.types import Quality, Sample, TagReading
from tests.helpers import free_port, wait_for

NS_URI = "urn:lineside:test:oven"
SERVER_URI = "urn:lineside:test:oven-server"
CLIENT_URI = "urn:lineside:test:agent"
USER, PASSWORD = "lineside", "s3cret-Pa55"
POLL = 0.25
# name: (browse name, variant type, initial value, status code)
NODES: dict[str, tuple[ua.VariantType, Any, int]] = {
    "Oven.Temp": (ua.VariantType.Double, 180.5, ua.StatusCodes.Good),
    "Oven.FanRpm": (ua.VariantType.Int32, 1450, ua.StatusCodes.Good),
    "Oven.DoorOpen": (ua.VariantType.Boolean, True, ua.StatusCodes.Good),
    "Oven.Recipe": (ua.VariantType.String, "PIZZA-12", ua.StatusCodes.Good),
    "Oven.Humidity": (ua.VariantType.Double, 55.0, ua.StatusCodes.BadSensorFailure),
    "Oven.Pressure": (ua.VariantType.Double, 1.01, ua.StatusCodes.UncertainLastUsableValue),
    "Oven.Level": (ua.VariantType.Double, 20.0, ua.StatusCodes.Good),
    "Oven.Flow": (ua.VariantType.Double, 3.0, ua.StatusCodes.Good),
}
NODE_MAP = """
[[tag]]
name = "temp"
node_id = "ns={ns};s=Oven.Temp"

[[tag]]
name = "fan"
node_id = "ns={ns};s=Oven.FanRpm"
scale = 0.01
offset = 1.0

[[tag]]
name = "door"
node_id = "nsu={uri};s=Oven.DoorOpen"

[[tag]]
name = "recipe"
node_id = "ns={ns};s=Oven.Recipe"

[[tag]]
name = "humidity"
node_id = "nsu={uri};s=Oven.Humidity"

[[tag]]
name = "pressure"
node_id = "ns={ns};s=Oven.Pressure"

[[tag]]
name = "level"
node_id = "ns={ns};s=Oven.Level"
deadband = 5.0

[[tag]]
name = "flow"
node_id = "ns={ns};s=Oven.Flow"
scale = 10.0
deadband = 5.0

[[tag]]
name = "ghost"
node_id = "ns={ns};s=Oven.NoSuchNode"

[[tag]]
name = "elsewhere"
node_id = "nsu=urn:nowhere;s=Oven.Temp"
"""


class OneUser:
    """Accepts one username/password, nobody else."""

    def get_user(
        self, iserver: Any, username: Any = None, password: Any = None, certificate: Any = None
    ):  # type: ignore[no-untyped-def]
        if username == USER and password == PASSWORD:
            return User(role=UserRole.User)
        return None


@dataclasses.dataclass
class Oven:
    server: Server
    nodes: dict[str, Node]
    ns: int

    async def write(self, name: str, value: Any, status: int = ua.StatusCodes.Good) -> None:
        vtype = NODES[name][0]
        await self.nodes[name].write_value(
            ua.DataValue(ua.Variant(value, vtype), StatusCode=ua.StatusCode(status))
        )


async def make_oven(port: int, security: tuple[Path, Path] | None = None) -> Oven:
    """An initialised, not yet started, server with the oven's nodes."""
    server = Server(user_manager=OneUser() if security else None)  # type: ignore[arg-type]
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/oven/")
    if security is None:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    else:
        await server.set_application_uri(SERVER_URI)
        await server.load_certificate(str(security[0]))
        await server.load_private_key(str(security[1]))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        server.set_identity_tokens([ua.UserNameIdentityToken])
    ns = await server.register_namespace(NS_URI)
    oven = await server.nodes.objects.add_object(ua.NodeId("Oven", ns), "Oven")
    nodes: dict[str, Node] = {}
    for name, (vtype, value, _status) in NODES.items():
        nodes[name] = await oven.add_variable(ua.NodeId(name, ns), name, ua.Variant(value, vtype))
    result = Oven(server, nodes, ns)
    for name, (_vtype, value, status) in NODES.items():
        if status != ua.StatusCodes.Good:
            await result.write(name, value, status)
    return result


@asynccontextmanager
async def running(port: int, security: tuple[Path, Path] | None = None) -> AsyncIterator[Oven]:
    oven = await make_oven(port, security)
    await oven.server.start()
    try:
        yield oven
    finally:
        await oven.server.stop()


def oven_plc_config(tmp_path: Path, port: int, mode: str, **opcua: Any) -> PlcConfig:
    path = tmp_path / "oven.toml"
    path.write_text(NODE_MAP.format(ns=2, uri=NS_URI))
    client = OpcUaClientConfig(
        endpoint=f"opc.tcp://127.0.0.1:{port}/oven/",
        mode=mode,
        sampling_interval_s=0.05,
        security_policy="None",
        security_mode="None",
        certificate=None,
        private_key=None,
        server_certificate=None,
        username=None,
        password_file=None,
        node_map=load_node_map(path),
    )
    return PlcConfig(
        name="oven-plc", protocol="opcua", host="", port=0, serial=None, timeout_s=0.2,
        max_backoff_s=0.5, poll_interval_s=POLL, devices=(),
        opcua=dataclasses.replace(client, **opcua),
    )  # fmt: skip


@asynccontextmanager
async def source_running(plc: PlcConfig) -> AsyncIterator[tuple[OpcUaSource, list[Sample]]]:
    source = OpcUaSource(plc)
    samples: list[Sample] = []
    task = asyncio.create_task(source.run(samples.append))
    try:
        yield source, samples
        assert not task.done(), "run() returned or raised"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def latest(samples: list[Sample], tag: str) -> TagReading | None:
    return samples[-1].readings[tag] if samples else None


def shows(
    samples: list[Sample], tag: str, check: Callable[[TagReading], bool]
) -> Callable[[], bool]:
    def predicate() -> bool:
        reading = latest(samples, tag)
        return reading is not None and check(reading)

    return predicate


def assert_oven_values(sample: Sample) -> None:
    r = sample.readings
    assert r["temp"] == TagReading(180.5)
    assert r["fan"] == TagReading(15.5)  # 1450 * 0.01 + 1.0
    assert r["door"] == TagReading(1.0)  # nsu= resolved to the namespace index
    assert r["recipe"].text == "PIZZA-12" and math.isnan(r["recipe"].value)
    assert r["recipe"].quality is Quality.GOOD
    assert r["humidity"].quality is Quality.BAD and r["humidity"].reason == "BadSensorFailure"
    assert math.isnan(r["humidity"].value)
    assert r["pressure"] == TagReading(1.01, Quality.UNCERTAIN, "UncertainLastUsableValue")
    assert r["level"] == TagReading(20.0)
    assert r["flow"] == TagReading(30.0)
    assert r["ghost"].quality is Quality.BAD and r["ghost"].reason == "BadNodeIdUnknown"
    assert r["elsewhere"].quality is Quality.BAD
    assert r["elsewhere"].reason == "namespace urn:nowhere is not on the server"
    assert sample.source == "oven-plc"


async def test_subscription_maps_values_and_follows_changes(tmp_path: Path) -> None:
    port = free_port()
    async with (
        running(port) as oven,
        source_running(oven_plc_config(tmp_path, port, "subscription")) as (
            source,
            samples,
        ),
    ):
        assert oven.ns == 2
        await wait_for(lambda: len(samples) >= 2, timeout=5)
        first = samples[0]
        assert all(r.reason != WAITING for r in first.readings.values())  # seeded by one read
        assert_oven_values(samples[-1])
        await oven.write("Oven.Temp", 190.25)
        await oven.write("Oven.FanRpm", 1500)
        await oven.write("Oven.Recipe", "BREAD-3")
        await oven.write("Oven.Humidity", 57.0)  # the sensor recovers
        await wait_for(shows(samples, "temp", lambda r: r.value == 190.25), timeout=2)
        await wait_for(shows(samples, "humidity", lambda r: r.quality is Quality.GOOD), timeout=2)
        r = samples[-1].readings
        assert r["fan"].value == pytest.approx(16.0)
        assert r["recipe"].text == "BREAD-3"
        assert r["humidity"] == TagReading(57.0)
        assert source.stats.notifications >= 4
        assert source.stats.connects == 1 and source.stats.failures == 0
        assert source.stats.reads == 1  # only the seed read: the rest came by notification


async def test_subscription_deadband_holds_small_changes(tmp_path: Path) -> None:
    port = free_port()
    async with (
        running(port) as oven,
        source_running(oven_plc_config(tmp_path, port, "subscription")) as (
            _source,
            samples,
        ),
    ):
        await wait_for(shows(samples, "level", lambda r: r.value == 20.0), timeout=5)
        # Inside the deadbands: level moves 1.0 (< 5.0); flow moves 0.2 raw = 2.0 engineering.
        await oven.write("Oven.Level", 21.0)
        await oven.write("Oven.Flow", 3.2)
        await oven.write("Oven.Temp", 181.5)  # no deadband: proves notifications flow meanwhile
        await wait_for(shows(samples, "temp", lambda r: r.value == 181.5), timeout=2)
        count = len(samples)
        await wait_for(lambda: len(samples) >= count + 3, timeout=3)  # 3 publishing intervals
        assert samples[-1].readings["level"].value == 20.0
        assert samples[-1].readings["flow"].value == 30.0
        # Beyond them: level moves 10.0; flow moves 1.0 raw = 10.0 engineering (the deadband is
        # in engineering units: a raw deadband of 5.0 would have held this change).
        await oven.write("Oven.Level", 31.0)
        await oven.write("Oven.Flow", 4.2)
        await wait_for(shows(samples, "level", lambda r: r.value == 31.0), timeout=2)
        await wait_for(shows(samples, "flow", lambda r: r.value == pytest.approx(42.0)), timeout=2)


async def test_poll_reads_every_node_in_one_call(tmp_path: Path) -> None:
    port = free_port()
    reads: list[int] = []

    async def on_read(event: ServerItemCallback, _dispatcher: Any) -> None:
        ids = [r.NodeId for r in event.request_params.NodesToRead]
        if any(i.NamespaceIndex == 2 for i in ids):  # not the client's keep-alive probe
            reads.append(len(ids))

    async with running(port) as oven:
        oven.server.subscribe_server_callback(CallbackType.PreRead, on_read)
        async with source_running(oven_plc_config(tmp_path, port, "poll")) as (source, samples):
            await wait_for(lambda: len(samples) >= 4, timeout=5)
            assert_oven_values(samples[-1])
            await oven.write("Oven.Temp", 175.0)
            await wait_for(shows(samples, "temp", lambda r: r.value == 175.0), timeout=2)
            # One Read per poll, carrying all 9 addressable nodes ("elsewhere" has no namespace).
            assert reads and set(reads) == {9}
            assert abs(len(reads) - source.stats.reads) <= 1
            assert source.stats.reads == pytest.approx(len(samples), abs=1)
            assert source.stats.notifications == 0


@pytest.mark.parametrize("mode", ["subscription", "poll"])
async def test_server_restart_gives_bad_then_good_without_restarting(
    tmp_path: Path, mode: str
) -> None:
    port = free_port()
    oven = await make_oven(port)
    await oven.server.start()
    replacement = await make_oven(port)  # built ahead: init() takes over a second
    started = False
    try:
        async with source_running(oven_plc_config(tmp_path, port, mode)) as (source, samples):
            await wait_for(shows(samples, "temp", lambda r: r.quality is Quality.GOOD), timeout=5)
            await oven.server.stop()
            took = await wait_for(shows(samples, "temp", lambda r: r.quality is Quality.BAD), 3)
            assert took < 2 * POLL + 0.5
            bad = samples[-1].readings
            assert all(r.quality is Quality.BAD for r in bad.values())
            assert f"127.0.0.1:{port}" in bad["temp"].reason
            await asyncio.sleep(1.0)  # a few failed reconnects against a closed port
            assert source.stats.consecutive_failures >= 2
            await replacement.server.start()
            started = True
            await wait_for(shows(samples, "temp", lambda r: r.quality is Quality.GOOD), timeout=5)
            await replacement.write("Oven.Temp", 200.0)
            await wait_for(shows(samples, "temp", lambda r: r.value == 200.0), timeout=2)
            assert_oven_values_except_temp(samples[-1])
            assert source.stats.connects == 2
            assert source.stats.consecutive_failures == 0
    finally:
        if started:
            await replacement.server.stop()


def assert_oven_values_except_temp(sample: Sample) -> None:
    readings = dict(sample.readings)
    readings["temp"] = TagReading(180.5)
    assert_oven_values(dataclasses.replace(sample, readings=readings))


def write_certificate(
    tmp_path: Path, name: str, uri: str, use: ExtendedKeyUsageOID
) -> tuple[Path, Path]:
    """A self-signed application certificate (DER) and its key (PEM) in tmp_path."""
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {}, [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")], [use]
    )
    cert_path, key_path = tmp_path / f"{name}.der", tmp_path / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


@pytest.mark.parametrize("password", [PASSWORD, "wrong-Pa55word"])
async def test_signed_and_encrypted_with_username(
    tmp_path: Path, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.sources.opcua")
    server_cert, server_key = write_certificate(
        tmp_path, "server", SERVER_URI, ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_cert, client_key = write_certificate(
        tmp_path, "client", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH
    )
    password_file = tmp_path / "password"
    password_file.write_text(password + "\n")
    port = free_port()
    plc = oven_plc_config(
        tmp_path, port, "subscription", security_policy="Basic256Sha256",
        security_mode="SignAndEncrypt", certificate=client_cert, private_key=client_key,
        # pinned for the good password; taken from the endpoint for the wrong one
        server_certificate=server_cert if password == PASSWORD else None,
        username=USER, password_file=password_file,
    )  # fmt: skip
    plc = dataclasses.replace(plc, timeout_s=1.0, poll_interval_s=0.5)
    async with running(port, (server_cert, server_key)), source_running(plc) as (source, samples):
        if password == PASSWORD:
            await wait_for(lambda: len(samples) >= 2, timeout=10)
            assert_oven_values(samples[-1])
            assert source.stats.failures == 0
        else:
            await wait_for(lambda: source.stats.failures >= 2, timeout=10)
            reading = samples[-1].readings["temp"]
            assert reading.quality is Quality.BAD
            assert "BadUserAccessDenied" in reading.reason
            assert source.stats.connects == 0
    texts = [s.readings["temp"].reason for s in samples] + [r.getMessage() for r in caplog.records]
    assert not any(password in text for text in texts)


async def test_server_down_raises_one_comms_edge_and_clears_when_back(tmp_path: Path) -> None:
    port = free_port()
    oven = await make_oven(port)
    await oven.server.start()
    replacement = await make_oven(port)  # built ahead: init() takes over a second
    started = False
    edges: list[CommsEdge] = []
    try:
        async with source_running(oven_plc_config(tmp_path, port, "poll")) as (source, samples):
            source.status.on_edge = edges.append
            await wait_for(lambda: source.status.state == "ok", timeout=5)
            first_good = source.status.last_good
            await oven.server.stop()
            await wait_for(lambda: source.status.state == "down", timeout=5)
            failures = source.status.failures
            await wait_for(lambda: source.status.failures >= failures + 2, timeout=5)
            assert [e.raised for e in edges] == [True]  # one raise for the whole outage
            raised = edges[0]
            endpoint = f"opc.tcp://127.0.0.1:{port}/oven/"
            assert raised.plc == "oven-plc" and raised.endpoint == endpoint
            assert raised.message.startswith(f"PLC oven-plc ({endpoint}) not answering: ")
            assert source.status.last_error == source.comms.last_error != ""
            await replacement.server.start()
            started = True
            await wait_for(lambda: len(edges) == 2, timeout=5)
            assert not edges[1].raised and edges[1].duration_s > 0
            assert source.status.state == "ok" and source.status.reconnects == 1
            last_good = source.status.last_good
            assert first_good is not None and last_good is not None and last_good > first_good
            assert samples[-1].readings["temp"].quality is Quality.GOOD
    finally:
        if started:
            await replacement.server.stop()
