"""One OPC-UA client connection: a subscription or batched polling, quality, reconnect.

Subscription mode creates one subscription (publishing interval = `poll_interval_s`) with a
monitored item per node (`sampling_interval_s`, queue size 1, and an absolute DataChangeFilter
where the tag has a deadband; the deadband is in engineering units, so it is divided by the
tag's scale for the server, which compares raw values). Notifications only update a cache of
the latest value of each tag; a ticker emits the whole cache every `poll_interval_s`. The
detection window therefore gets one complete row per interval, on a regular clock, whatever
the notification rate; a tag held by its deadband repeats its last reported value. A tag that
has no value yet is BAD "waiting for first value". On every (re)connect the nodes are read once
in one batch, which seeds the cache, so the first row after a reconnect is already complete,
and drops the deadband of tags that are not numbers (OPC-UA allows it only on numeric types).

Poll mode reads every node in ONE Read service call every `poll_interval_s` (absolute schedule,
missed slots skipped), under a deadline of `timeout_s`.

Node ids are the strings of the node map; `nsu=<uri>;...` is resolved against the server's
namespace array after each connect (asyncua parses it but does not resolve it).

Failures never raise out of `run`: a failed connect, a failed or late read, a lost transport
(asyncua's connection supervisor: socket closed or keep-alive probe failed) or a bad
subscription status marks every tag BAD with the reason, closes the client and connects a new
one with exponential backoff and jitter capped by `max_backoff_s` (asyncua's own
auto-reconnect, without jitter and with its own cap, is left off). Each failure is logged once
at INFO, then quietly until it recovers, with counters. The password is never logged. Every
session's outcome feeds the connection's `LinkStatus` (`status`, agent.ops.comms): failing for
longer than `timeout_s` makes it `down` and the agent raises a comms alarm (the one WARNING).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509

from agent.config import NodeTag, PlcConfig
from agent.core.quality import judge
from agent.ops.comms import LinkStatus, PlcStatus
from agent.sources.backoff import Backoff
from agent.sources.base import Emit, raise_if_cancelled
from agent.types import Quality, Sample, TagReading

log = logging.getLogger(__name__)

WAITING = "waiting for first value"
_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_FILTER_REJECTED = {
    ua.StatusCodes.BadFilterNotAllowed,
    ua.StatusCodes.BadMonitoredItemFilterUnsupported,
    ua.StatusCodes.BadDeadbandFilterInvalid,
}


@dataclass
class OpcUaStats:
    """Counters of one OPC-UA connection."""

    connects: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    reads: int = 0
    samples: int = 0
    notifications: int = 0
    overruns: int = 0
    last_error: str = ""
    last_ok: float = 0.0


class ConnectionLost(Exception):
    """The session is unusable: the transport dropped or the subscription died."""


def to_reading(tag: NodeTag, dv: ua.DataValue) -> TagReading:
    """One tag's reading from the DataValue the server sent for its node."""
    status = dv.StatusCode or ua.StatusCode()  # a null status code means Good
    if status.is_bad():
        return TagReading(math.nan, Quality.BAD, status.name)
    quality, reason = (
        (Quality.UNCERTAIN, status.name) if status.is_uncertain() else (Quality.GOOD, "")
    )
    value = dv.Value.Value if dv.Value is not None else None
    if isinstance(value, bool):
        return TagReading(1.0 if value else 0.0, quality, reason)
    if isinstance(value, int | float):
        # the quality policy (agent.core.quality): non-finite is bad, far outside `range` uncertain
        return judge(tag.scaling.to_engineering(value), tag.eu_range, quality, reason, "server")
    if isinstance(value, str):
        return TagReading(math.nan, quality, reason, text=value)
    return TagReading(math.nan, Quality.UNCERTAIN, f"unsupported value type {type(value).__name__}")


def _redacted(url: str) -> str:
    """The endpoint without any user:password@ part, for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


class OpcUaSource:
    """Reads one OPC-UA server by subscription or polling; never raises a read error."""

    def __init__(self, plc: PlcConfig) -> None:
        if plc.opcua is None:
            raise ValueError(f"PLC {plc.name} has no OPC-UA settings")
        self.plc = plc
        self.config = plc.opcua
        self.name = plc.name
        self.tags = self.config.node_map.tags
        self.endpoint = _redacted(self.config.endpoint)
        self.stats = OpcUaStats()
        self.comms = LinkStatus(plc.name, "", None, self.endpoint, plc.timeout_s)
        self.status = PlcStatus(plc.name, [self.comms])
        self._backoff = Backoff(min(0.5, plc.poll_interval_s), plc.max_backoff_s)
        self._cache: dict[str, TagReading] = {}
        self._password = ""

    async def run(self, emit: Emit) -> None:
        """Connect, subscribe or poll, and reconnect on any failure, until cancelled."""
        while True:
            started = time.time()
            try:
                await self._session(emit)
                detail = "session ended"
            except Exception as exc:  # every failure becomes bad-quality readings
                detail = self._detail(exc)
            raise_if_cancelled()  # a stop swallowed inside asyncua (3.11's wait_for)
            reason = self._describe(detail)
            self._failed(reason)
            # The outage began when the session last answered, or when this attempt began.
            began = max(started, self.comms.last_good or 0.0)
            self.status.failed(self.comms, self._redact(detail), began, time.time())
            await self._wait_out(emit, reason)

    async def _session(self, emit: Emit) -> None:
        client = await self._connect()
        try:
            nodes, unresolved = await self._resolve(client)
            self._connected()
            if self.config.mode == "poll":
                await self._poll(client, nodes, unresolved, emit)
            else:
                await self._subscribe(client, nodes, unresolved, emit)
        finally:
            await self._close(client)

    async def _connect(self) -> Client:
        cfg = self.config
        client = Client(
            cfg.endpoint,
            timeout=self.plc.timeout_s,
            watchdog_intervall=max(1.0, self.plc.timeout_s),
        )
        client.name = client.description = f"Lineside edge agent ({self.name})"
        client.application_uri = "urn:lineside:agent"
        client.product_uri = "urn:lineside"
        client.session_timeout = 60_000  # a session orphaned by a lost link expires in a minute
        try:
            if cfg.username is not None and cfg.password_file is not None:
                self._password = cfg.password_file.read_text().rstrip("\r\n")
                client.set_user(cfg.username)
                client.set_password(self._password)
            if cfg.security_policy != "None":
                assert cfg.certificate is not None and cfg.private_key is not None
                cert = await uacrypto.load_certificate(str(cfg.certificate))
                client.application_uri = _application_uri(cert) or client.application_uri
                await client.set_security(
                    _POLICIES[cfg.security_policy],
                    str(cfg.certificate),
                    str(cfg.private_key),
                    server_certificate=(  # None: taken from the endpoint (trust on first use)
                        str(cfg.server_certificate) if cfg.server_certificate else None
                    ),
                    mode=_MODES[cfg.security_mode],
                )
            await client.connect()
        except BaseException:
            client.disconnect_socket()
            raise
        return client

    async def _close(self, client: Client) -> None:
        """Close the session and socket; shielded, so cancellation still closes the client."""
        task = asyncio.ensure_future(self._disconnect(client))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait({task})
            raise

    async def _disconnect(self, client: Client) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.plc.timeout_s * 2):
                await client.disconnect()
        client.disconnect_socket()

    async def _resolve(
        self, client: Client
    ) -> tuple[list[tuple[NodeTag, Node]], dict[str, TagReading]]:
        """The nodes of the tags; tags that cannot be addressed get a BAD reading instead."""
        nodes: list[tuple[NodeTag, Node]] = []
        unresolved: dict[str, TagReading] = {}
        namespaces: list[str] | None = None
        for tag in self.tags:
            try:
                node_id = ua.NodeId.from_string(tag.node_id)
            except (ValueError, ua.UaError) as exc:
                unresolved[tag.name] = TagReading(math.nan, Quality.BAD, f"bad node id: {exc}")
                continue
            uri = getattr(node_id, "NamespaceUri", None)
            if uri:
                if namespaces is None:
                    namespaces = await client.get_namespace_array()
                if uri not in namespaces:
                    reason = f"namespace {uri} is not on the server"
                    unresolved[tag.name] = TagReading(math.nan, Quality.BAD, reason)
                    continue
                ns = ua.Int16(namespaces.index(uri))
                node_id = ua.NodeId(node_id.Identifier, ns, node_id.NodeIdType)
            nodes.append((tag, client.get_node(node_id)))
        return nodes, unresolved

    async def _read(self, client: Client, nodes: list[tuple[NodeTag, Node]]) -> list[ua.DataValue]:
        """Every node in one Read service call, under the deadline."""
        if not nodes:
            return []
        self.stats.reads += 1
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        async with asyncio.timeout(self.plc.timeout_s):
            return await client.read_attributes([n for _, n in nodes])

    async def _poll(
        self,
        client: Client,
        nodes: list[tuple[NodeTag, Node]],
        unresolved: dict[str, TagReading],
        emit: Emit,
    ) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            ts = time.time()
            values = await self._read(client, nodes)
            raise_if_cancelled()
            readings = {
                tag.name: to_reading(tag, dv) for (tag, _), dv in zip(nodes, values, strict=True)
            }
            self._emit(emit, ts, {**readings, **unresolved})
            next_at = self._next_slot(next_at)
            await asyncio.sleep(next_at - loop.time())

    async def _subscribe(
        self,
        client: Client,
        nodes: list[tuple[NodeTag, Node]],
        unresolved: dict[str, TagReading],
        emit: Emit,
    ) -> None:
        lost = asyncio.Event()
        why: list[str] = []

        async def on_lost(exc: Exception) -> None:
            why.append(f"connection lost: {self._detail(exc)}")
            lost.set()

        client.connection_lost_callback = on_lost
        self._cache = {t.name: TagReading(math.nan, Quality.BAD, WAITING) for t, _ in nodes}
        values = await self._read(client, nodes)  # seeds the cache, tells numbers from text
        not_numbers = set()
        for (tag, _), dv in zip(nodes, values, strict=True):
            self._cache[tag.name] = to_reading(tag, dv)
            if dv.Value is not None and isinstance(dv.Value.Value, bool | str):
                not_numbers.add(tag.name)
        sub = await client.create_subscription(self.plc.poll_interval_s * 1000, handler=None)
        handles = await self._monitor(sub, nodes, not_numbers)
        consumer = asyncio.create_task(self._consume(sub, handles, lost, why))
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while True:
                raise_if_cancelled()
                self._emit(emit, time.time(), {**self._cache, **unresolved})
                next_at = self._next_slot(next_at)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(next_at):
                        await lost.wait()
                if lost.is_set() or client.state is not UaClientState.CONNECTED:
                    raise ConnectionLost(why[0] if why else "connection lost")
        finally:
            consumer.cancel()
            await asyncio.wait({consumer})

    async def _monitor(
        self, sub: Subscription, nodes: list[tuple[NodeTag, Node]], not_numbers: set[str]
    ) -> dict[int, NodeTag]:
        """One monitored item per node; a deadband the server refuses is dropped, not fatal."""
        handles = {i: tag for i, (tag, _) in enumerate(nodes, start=1)}
        ids = {i: node.nodeid for i, (_, node) in enumerate(nodes, start=1)}
        filtered = {h for h, t in handles.items() if t.deadband > 0 and t.name not in not_numbers}
        pending = list(handles)
        while pending:
            requests = [self._item(h, ids[h], handles[h], h in filtered) for h in pending]
            results = await sub.create_monitored_items(requests)
            retry = []
            for h, result in zip(pending, results, strict=True):
                if not isinstance(result, ua.StatusCode):
                    continue
                if h in filtered and result.value in _FILTER_REJECTED:
                    log.warning("PLC %s: %s refused the deadband of %s (%s); monitoring without",
                                self.name, self.endpoint, handles[h].name, result.name)  # fmt: skip
                    filtered.discard(h)
                    retry.append(h)
                else:
                    self._cache[handles[h].name] = TagReading(math.nan, Quality.BAD, result.name)
            pending = retry
        return handles

    def _item(
        self, handle: int, node_id: ua.NodeId, tag: NodeTag, deadband: bool
    ) -> ua.MonitoredItemCreateRequest:
        params = ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=self.config.sampling_interval_s * 1000,
            QueueSize=1,
            DiscardOldest=True,
        )
        if deadband:
            params.Filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=ua.DeadbandType.Absolute,
                DeadbandValue=tag.deadband / abs(tag.scaling.scale),
            )
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=params,
        )

    async def _consume(
        self, sub: Subscription, handles: dict[int, NodeTag], lost: asyncio.Event, why: list[str]
    ) -> None:
        """Apply notifications to the cache until the subscription reports a bad status."""
        async for event in sub:
            if isinstance(event, DataChangeEvent):
                item = event.data.monitored_item
                tag = handles.get(item.ClientHandle)
                if tag is not None:
                    self.stats.notifications += 1
                    self._cache[tag.name] = to_reading(tag, item.Value)
            elif isinstance(event, StatusChangeEvent) and not event.notification.Status.is_good():
                why.append(f"subscription status {event.notification.Status.name}")
                lost.set()
                return
        why.append("subscription closed")
        lost.set()

    def _next_slot(self, next_at: float) -> float:
        """The next slot of the absolute schedule, skipping the slots already missed."""
        next_at += self.plc.poll_interval_s
        now = asyncio.get_running_loop().time()
        if next_at < now:
            self.stats.overruns += 1
            next_at = now
        return next_at

    def _emit(self, emit: Emit, ts: float, readings: dict[str, TagReading]) -> None:
        self.stats.samples += 1
        self.stats.last_ok = time.time()
        self.status.answered(self.comms, self.stats.last_ok)
        emit(
            Sample(ts=ts, source=self.name, readings={t.name: readings[t.name] for t in self.tags})
        )

    def _bad_sample(self, reason: str) -> Sample:
        bad = TagReading(math.nan, Quality.BAD, reason)
        return Sample(ts=time.time(), source=self.name, readings={t.name: bad for t in self.tags})

    async def _wait_out(self, emit: Emit, reason: str) -> None:
        """Wait out the backoff, still emitting bad samples at the poll rate."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._backoff.next_delay()
        while True:
            self.stats.samples += 1
            emit(self._bad_sample(reason))
            remaining = until - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(self.plc.poll_interval_s, remaining))

    def _connected(self) -> None:
        self.stats.connects += 1
        self.status.connects += 1
        if self.stats.consecutive_failures:
            log.info("PLC %s: %s is back after %d failed attempts", self.name, self.endpoint,
                        self.stats.consecutive_failures)  # fmt: skip
        self.stats.consecutive_failures = 0
        self._backoff.reset()

    def _failed(self, reason: str) -> None:
        stats = self.stats
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = reason
        if stats.consecutive_failures == 1:
            log.info("PLC %s: %s; its tags are bad, retrying with backoff", self.name, reason)
        else:
            log.debug("PLC %s still failing: %s", self.name, reason)

    def _detail(self, exc: BaseException) -> str:
        if isinstance(exc, ua.UaStatusCodeError):
            return ua.StatusCode(exc.code).name
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.plc.timeout_s} s"
        if isinstance(exc, ConnectionLost) or not str(exc):
            return str(exc) or type(exc).__name__
        return f"{type(exc).__name__}: {exc}"

    def _describe(self, detail: str) -> str:
        """A one-line reason naming the endpoint; never contains the password."""
        return self._redact(f"OPC-UA {self.endpoint}: {detail}")

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text


def _application_uri(cert: Any) -> str | None:
    """The URI in a certificate's subjectAltName: the ApplicationUri servers check."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uris[0]) if uris else None
