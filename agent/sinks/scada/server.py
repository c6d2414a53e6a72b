"""The SCADA face: a local OPC-UA server publishing values, scores, SPC states and alarms.

Address space, namespace `opcua.namespace`; string node ids equal the browse path below
Objects, so an integrator can type them into a SCADA tag list:

    Lines/<line>/Signals/<tag>/Value                AnalogItemType, EngineeringUnits, EURange;
                                                    the status code carries the PLC quality
                              /Quality              String: good | uncertain: ... | bad: ...
                              /SpcState             String: in-control | the rule broken
                              /AnomalyContribution  Double: this tag's share of the score
                              /TimeToLimit          Double: seconds until a drifting tag
                                                    reaches its next limit (BadNoData: none)
    Lines/<line>/AnomalyScore, Threshold            Double
                /AnomalyActive, SpcAlarmActive, AlarmActive   Boolean
                /LastEvent, LastExplanation         String (+ LastExplanationTime, DateTime,
                                                    LastExplanationEvent, the alarm's id,
                                                    LastExplanationGrounded, Boolean, and
                                                    LastExplanationGuard: ok | template | why)
                /ModelVersion, ModelStatus          String (+ ModelLastUpdate, String)
                /Learning                           Boolean: learning on the device (no model)
                /LearningState                      String: waiting for good data | learning |
                                                    learned | model
                /LearningProgress, LearningEtaS     Double: percent done, seconds left
                /Alarms/Anomaly, /Alarms/Spc        alarm conditions (see alarms.py)
    Agent/Health, UptimeS, LoopLatencyMs, SamplesProcessed, SampleQueueDrops,
          PublishCoalesced, PollSlotsSkipped, PublishLagMs (agent/ops/overload.py turns
          them into Health's reason), EventDrops, Sessions, LoginFailures, CertificatesRejected,
          JournalOk, JournalWriteErrors, JournalDropped, ExplainerQueueDrops,
          ExplanationsLlm, ExplanationsTemplate, ExplainerRejections, ExplainerWorkerFailures,
          SnapshotsWritten, SnapshotsSkipped, SnapshotsFailed, SnapshotsRestored,
          SnapshotsRefused, SnapshotRefusedReason (agent/runtime/snapshots.py),
          RecordingState, RecordedRows, RecordedBytes, RecordingDrops, RecordingErrors
          (agent/sinks/recorder.py); each is read,
          when it is published, from the stats its service registered with the agent's
          `CounterRegistry` (the table is `AGENT_VARIABLES` in limits.py)
    Plcs/<name>/State, LastError, LastGood, Polls, Failures, Reconnects, Alarm   (plcs.py)

Several lines (`[[line]]`) share the server: `add_line` before `start` gives each its own
`Lines/<line>/` folder, and `offer`, `publish_model`, `publish_explanation`, `publish_learning`
take the line (None: the first). Agent/Health is the line's, or with several lines each
degraded line's reason after its name.

Overflow policy: `offer` stores the newest line result and wakes the publisher; results that
arrive while it is busy are coalesced (only the newest is written) and counted, but their
alarm edges are queued (at most 1,000, the oldest dropped and counted) so no alarm is lost.
Publishing is by exception and per source: a publish looks only at the tags the samples since
the last one read, and writes a good Value only when it or its status changed, stamped with
the time of the poll that read it (a reading that is not good is written at every report).
Writes go straight into the address space (`write_attribute_value`); subscriptions copy
changes into bounded per-item queues, so a slow or stalled client never blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncua import Server, ua
from asyncua.server.internal_session import InternalSession

from agent.config import NodeTag, OpcUaConfig, Tag
from agent.errors import StartupError
from agent.ops.comms import PlcStatus
from agent.ops.counters import CounterRegistry
from agent.ops.overload import OverloadWatch, with_overload
from agent.pipeline.line import LineResult
from agent.sinks.scada.address_space import LineSpec, build_address_space, value_type
from agent.sinks.scada.alarms import AckListener, AlarmBook
from agent.sinks.scada.aspace_cache import cache_folder, commit_shelf, new_shelf, usable_shelf
from agent.sinks.scada.channel import ChannelRules
from agent.sinks.scada.door import ConnectionBook
from agent.sinks.scada.limits import AGENT_VARIABLES, AgentCounters, apply_limits, status_of
from agent.sinks.scada.model import PublishedValue
from agent.sinks.scada.pki import ensure_server_certificate
from agent.sinks.scada.plcs import build_plc_nodes, publish_plcs
from agent.sinks.scada.security import (
    ClientCertificateCheck,
    LinesideServer,
    RolePermissions,
    ScadaUserManager,
)
from agent.types import Event, EventKind, Quality, TagReading

log = logging.getLogger(__name__)
D, S, B = ua.VariantType.Double, ua.VariantType.String, ua.VariantType.Boolean
T = ua.VariantType.DateTime
MAX_PENDING_EVENTS = 1000
_BAD = 0x80000000  # the severity bit of a Bad status code
_GOOD = ua.StatusCode(ua.StatusCodes.Good)  # shared: a published DataValue is never changed
VALUE = ua.AttributeIds.Value
_NO_DRIFT = ua.StatusCodes.BadNoData  # TimeToLimit of a tag that does not drift
YIELD_EVERY = 200  # writes between yields to the event loop: bounds one publish's stall
FIGURES_INTERVAL_S = 0.1  # Agent/ and Plcs/ are read and published at most this often
_POLICIES = {
    ("Basic256Sha256", "Sign"): ua.SecurityPolicyType.Basic256Sha256_Sign,
    ("Basic256Sha256", "SignAndEncrypt"): ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ("Aes256_Sha256_RsaPss", "Sign"): ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ("Aes256_Sha256_RsaPss", "SignAndEncrypt"):
        ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
    ("Aes128_Sha256_RsaOaep", "Sign"): ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"):
        ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
}  # fmt: skip


@dataclass
class LineFeed:
    """What the server holds for one line: its nodes' spec and what waits to be published."""

    spec: LineSpec
    model: tuple[str, str, str] | None
    latest: LineResult | None = None
    explanation: tuple[str, float, str, str] | None = None
    learning: tuple[str, float, float] | None = None
    health: str = "starting"
    #: Tags read since the last publish (None: all): only they are looked at.
    dirty: set[str] | None = field(default_factory=set)
    #: tag -> (its variant type, its Value path, its Quality path).
    signals: dict[str, tuple[ua.VariantType, str, str]] = field(default_factory=dict)


class ScadaServer:
    """Owns the asyncua server; `offer`, `publish_explanation`, `publish_model` never block."""

    def __init__(
        self,
        config: OpcUaConfig,
        line: str,
        tags: Sequence[Tag | NodeTag],
        channels: list[str],
        model_version: str,
        threshold: float,
        registry: CounterRegistry | None = None,
        plcs: Sequence[PlcStatus] = (),
    ) -> None:
        self.config = config
        self.plcs = plcs  # the sources' comms status, read when Plcs/ is published
        self.line = line  # the first line; `add_line` adds more
        self.tags = tags
        self.channels = channels
        self.threshold = threshold
        self._lines: dict[str, LineFeed] = {}
        self.add_line(line, tags, channels, model_version, threshold)
        # Agent/ is published from the services' own stats, registered here by name.
        self.registry = registry if registry is not None else CounterRegistry()
        self.counters = AgentCounters(self.registry)
        self.health = "starting"
        self.coalesced = 0
        self.event_drops = 0
        self.users = ScadaUserManager(config)
        self.certificates = ClientCertificateCheck(config.trusted_path, config.rejected_path)
        self.connections = ConnectionBook(config.limits)
        rules = ChannelRules(
            config.serves_none, self.certificates, self.connections, self.users.count_refusal
        )
        # never asyncua's permissive default user manager
        self._server: Server = LinesideServer(self.users, rules, config.limits.handshake_timeout_s)
        self._ns = 0
        self._nodes: dict[str, ua.NodeId] = {}
        self._last: dict[str, tuple[Any, int]] = {}
        self._writes = 0
        self._aspace: Any = None
        self.overload = OverloadWatch()
        self.publish_lag_ms = 0.0
        self._figures_due = 0.0
        self._events: deque[Event] = deque()
        self._started = time.monotonic()
        self._wake = asyncio.Event()
        self.alarms: AlarmBook | None = None
        self.on_acknowledge: AckListener | None = None  # e.g. the journal's record_ack
        self.registry.register("opcua", self)

    def add_line(
        self,
        line: str,
        tags: Sequence[Tag | NodeTag],
        channels: list[str],
        model_version: str,
        threshold: float,
    ) -> None:
        """Serve one more line under `Lines/<line>/` (before `start`)."""
        spec = LineSpec(line, tags, channels, threshold)
        base = f"Lines/{line}/Signals"
        signals = {
            t.name: (value_type(t), f"{base}/{t.name}/Value", f"{base}/{t.name}/Quality")
            for t in tags
        }
        self._lines[line] = LineFeed(spec, model=(model_version, "running", ""), signals=signals)

    def _feed(self, line: str | None) -> LineFeed:
        return self._lines[self.line if line is None else line]

    # --- the server's own Agent/ figures (read at publish time) -----------------------------

    @property
    def uptime_s(self) -> float:
        """Seconds since the server started."""
        return time.monotonic() - self._started

    @property
    def poll_slots_skipped(self) -> int:
        """Poll slots the PLC connections missed since start (a poll longer than its interval)."""
        return sum(p.skipped_slots for p in self.plcs)

    @property
    def sessions(self) -> int:
        """Client sessions open now (asyncua counts them per process)."""
        return InternalSession._current_connections

    @property
    def login_failures(self) -> int:
        """Refused logins since start."""
        return self.users.login_failures

    @property
    def certificates_rejected(self) -> int:
        """Client certificates refused since start."""
        return self.certificates.refused

    @property
    def server(self) -> Server:
        """The asyncua server (for tests and benchmarks)."""
        return self._server

    @property
    def namespace_index(self) -> int:
        """Index of our namespace in the server's namespace array."""
        return self._ns

    def node_id(self, path: str) -> ua.NodeId:
        """The NodeId of a published variable by its path below Objects."""
        return self._nodes[path]

    async def _configure_security(self) -> None:
        server, config = self._server, self.config
        policies = []
        if config.serves_secure:
            cert, key = ensure_server_certificate(config, server.get_application_uri())
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            for policy in config.security_policies:
                policies += [_POLICIES[(policy, mode)] for mode in config.security_modes]
            # the channel's own certificate is checked by the door (channel.py), not by asyncua
        if config.serves_none:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        server.set_security_policy(policies, permission_ruleset=RolePermissions())
        tokens: list[type] = [ua.UserNameIdentityToken] if config.users else []
        if config.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        server.allow_remote_admin(False)
        apply_limits(server, config.limits)

    async def start(self) -> None:
        """Build the address space, set up security, and start listening."""
        server = self._server
        # ConditionRefresh(2): asyncua binds them only when asked; the value is the Severity of
        # its RefreshStart/RefreshEnd events
        server.iserver.bind_condition_methods = 100
        cache = cache_folder(self.config.pki_dir.parent)
        shelf = usable_shelf(cache)
        building = new_shelf(cache) if shelf is None else None
        await server.init(shelf or building)  # the standard address space, cached (fast start)
        if building is not None:
            commit_shelf(building, cache)
        server.set_endpoint(self.config.endpoint)
        server.set_server_name("Lineside edge agent")
        await server.set_application_uri(f"{self.config.namespace}:server")
        await self._configure_security()
        self._ns = await server.register_namespace(self.config.namespace)
        await self._build()
        # asyncua logs a failed start with a full traceback before raising; we report the
        # failure ourselves, in one line with the fix, so its logger is muted for this call.
        asyncua_log = logging.getLogger("asyncua.server.server")
        level = asyncua_log.level
        asyncua_log.setLevel(logging.CRITICAL)
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(
                f"OPC-UA server cannot listen on {self.config.endpoint}: {exc.strerror or exc} "
                "(fix: another process holds the port; change opcua.endpoint or stop it)"
            ) from exc
        finally:
            asyncua_log.setLevel(level)
        # The address space is hundreds of thousands of long-lived objects; left to the cyclic
        # GC, every full collection walks them all and stalls the event loop (and with it the
        # detection loop) for a long moment. Freeze them out of the collector's view.
        gc.collect()
        gc.freeze()
        self._started = time.monotonic()
        log.info("OPC-UA server listening on %s (%s)", self.config.endpoint, self.describe())

    def describe(self) -> str:
        """One line on the offered security: policies, modes, users, anonymous."""
        c = self.config
        parts = []
        if c.serves_secure:
            parts.append(f"{'/'.join(c.security_policies)} with {'/'.join(c.security_modes)}")
        if c.serves_none:
            parts.append("no security (explicitly enabled)")
        parts.append(f"{len(c.users)} user(s), anonymous {'on' if c.allow_anonymous else 'off'}")
        return "; ".join(parts)

    async def _build(self) -> None:
        specs = [feed.spec for feed in self._lines.values()]
        self._nodes, line_nodes = await build_address_space(self._server, self._ns, specs)
        self._aspace = self._server.iserver.aspace
        self.alarms = AlarmBook(self._server, self._ns, self._acknowledged)
        for name, node in line_nodes.items():
            await self.alarms.setup(name, node)
        self._nodes.update(await build_plc_nodes(self._server, self._ns, self.plcs, self.alarms))
        for feed in self._lines.values():
            await self._publish_model(feed)

    def offer(
        self, result: LineResult, line: str | None = None, tags: Iterable[str] | None = None
    ) -> None:
        """Hand over a line's newest result and the tags its sample read (None: every tag);
        never blocks, coalesces if the publisher is behind (the tags of every result offered
        since the last publish are written, each with its newest reading)."""
        feed = self._feed(line)
        if feed.latest is not None:
            self.coalesced += 1
        feed.latest = result
        if tags is None:
            feed.dirty = None
        elif feed.dirty is not None:
            feed.dirty.update(tags)
        for event in result.events:
            if len(self._events) >= MAX_PENDING_EVENTS:
                self._events.popleft()
                self.event_drops += 1
            self._events.append(event)
        self._wake.set()

    def offer_event(self, event: Event) -> None:
        """Queue one alarm edge alone (a comms edge, an alarm still open after a restart)."""
        if len(self._events) >= MAX_PENDING_EVENTS:
            self._events.popleft()
            self.event_drops += 1
        self._events.append(event)
        self._wake.set()

    def _acknowledged(self, alarm_id: str, user: str, comment: str) -> None:
        if self.on_acknowledge is not None:
            self.on_acknowledge(alarm_id, user, comment)

    def publish_explanation(
        self,
        text: str,
        ts: float,
        event_id: str = "",
        guard: str = "template",
        line: str | None = None,
    ) -> None:
        """Publish the explanation of alarm `event_id` (wall-clock `ts`, s) and the guard's
        word on it (`ok`, `template` or why the LLM's answer was refused); never blocks."""
        self._feed(line).explanation = (text, ts, event_id, guard)
        self._wake.set()

    def publish_model(
        self, version: str, status: str, last_update: str, line: str | None = None
    ) -> None:
        """Publish the running model's version, status and last update time; never blocks."""
        self._feed(line).model = (version, status, last_update)
        self._wake.set()

    def publish_learning(
        self, state: str, progress: float, eta_s: float | None, line: str | None = None
    ) -> None:
        """Publish a commissioning line's learning state, progress (0..1) and seconds left."""
        self._feed(line).learning = (state, progress, math.nan if eta_s is None else eta_s)
        self._wake.set()

    async def _publish_learning(self, feed: LineFeed) -> None:
        if feed.learning is None:
            return
        (state, progress, eta_s), feed.learning = feed.learning, None
        base = f"Lines/{feed.spec.line}"
        await self._write(f"{base}/Learning", state not in ("learned", "model"), B)
        await self._write(f"{base}/LearningState", state, S)
        await self._write(f"{base}/LearningProgress", round(100.0 * progress, 2), D)
        await self._write(f"{base}/LearningEtaS", round(eta_s, 1), D)

    async def _write(
        self,
        path: str,
        value: Any,
        vtype: ua.VariantType,
        status: int = ua.StatusCodes.Good,
        when: dt.datetime | None = None,
        always: bool = False,
    ) -> None:
        """Write into the address space; unchanged texts, flags and counters are skipped."""
        if not always and self._last.get(path) == (value, status):
            return
        self._last[path] = (value, status)
        datavalue = PublishedValue(
            ua.Variant(value, vtype) if value is not None else ua.Variant(),  # null: no value
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=when, ServerTimestamp=dt.datetime.now(dt.UTC),
        )  # fmt: skip
        if status & _BAD and value is not None:
            await self._store(self._nodes[path], datavalue)  # counts its own write
            return
        await self._aspace.write_attribute_value(self._nodes[path], VALUE, datavalue)
        self._writes += 1
        if self._writes % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # let the detection loop and client requests in

    async def _store(self, nodeid: ua.NodeId, datavalue: ua.DataValue) -> None:
        """Store a tag's value and tell the subscriptions: what asyncua's write path does,
        less its checks (the node and its type are ours, the variant built for that type)
        and less nulling a Bad value (OPC-UA Part 4 7.7.1 says a client is to ignore it; we
        keep the last value beside the Bad code, as docs/quality.md says)."""
        attval = self._aspace._nodes[nodeid].attributes[ua.AttributeIds.Value]
        attval.value = datavalue
        attval.value_callback = None
        for key, callback in list(attval.datachange_callbacks.items()):
            try:
                await callback(key, datavalue)
            except Exception:
                log.exception("OPC-UA subscription callback failed on %s", nodeid)
        self._writes += 1
        if self._writes % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # let the detection loop and client requests in

    async def publish(self, result: LineResult, line: str | None = None) -> None:
        """Write one result of a line (every tag of it) and the Agent/ figures."""
        self._feed(line).dirty = None
        await self._publish_line(result, line)
        await self._publish_agent()

    async def _publish_line(self, result: LineResult, line: str | None = None) -> None:
        """Write one result of a line into the address space (the server's internal write path).

        Each tag's SourceTimestamp is its own poll's time (`TagReading.ts`), the line's nodes
        carry the row's; ServerTimestamp is when the value reached the address space."""
        feed = self._feed(line)
        when = _utc(result.ts)
        base = f"Lines/{feed.spec.line}"
        dirty, feed.dirty = feed.dirty, set()
        names = feed.signals if dirty is None else dirty
        oldest, now = math.inf, dt.datetime.now(dt.UTC)
        for name in names:
            reading = result.readings.get(name)
            signal = feed.signals.get(name)
            if reading is None or signal is None:
                continue
            vtype, value_path, quality_path = signal
            ts = reading.ts if reading.ts is not None else result.ts
            oldest = min(oldest, ts)
            good = reading.quality is Quality.GOOD
            # By exception: a good value is written when it or its status changes, under the
            # time of the poll that read it; a value that is not good at every report (the hub
            # reports a failing device at its poll rate), so its time says when it was last bad.
            status = ua.StatusCodes.Good if good else status_of(reading)
            value = _value(reading, vtype)
            if good and self._last.get(value_path) == (value, status):
                continue  # unchanged: not written again (its Quality is "good" already)
            self._last[value_path] = (value, status)
            polled = _utc(ts)
            datavalue = PublishedValue(
                ua.Variant(value, vtype) if value is not None else ua.Variant(),
                StatusCode=_GOOD if good else ua.StatusCode(status),
                SourceTimestamp=polled, ServerTimestamp=now,
            )  # fmt: skip
            await self._store(self._nodes[value_path], datavalue)
            text = "good" if good else f"{reading.quality.value}: {reading.reason}"
            await self._write(quality_path, text, S, when=polled)
        if oldest < math.inf:
            self.publish_lag_ms = max(0.0, (time.time() - oldest) * 1e3)
        for i, channel in enumerate(feed.spec.channels):
            p = f"{base}/Signals/{channel}"
            await self._write(
                f"{p}/SpcState", result.spc_states.get(channel, "no-data"), S, when=when
            )
            if result.score is not None:
                await self._write(
                    f"{p}/AnomalyContribution", result.score.contributions[i], D, when=when
                )
            drift = result.forecasts.get(channel)
            if drift is not None:
                await self._write(f"{p}/TimeToLimit", drift.seconds, D, when=when)
            else:
                await self._write(f"{p}/TimeToLimit", None, D, _NO_DRIFT, when)
        # The flags and the score are a verdict only while the detectors judge the line: once
        # they have not for more than a window (a tag bad, the window refilling) they keep
        # their last value but say it is only the last usable one, and Health says why.
        judged = ua.StatusCodes.Good if result.judged else ua.StatusCodes.UncertainLastUsableValue
        score = f"{base}/AnomalyScore"
        if result.score is not None:
            await self._write(score, result.score.value, D, judged, when, always=True)
        elif not result.judged and score in self._last:
            await self._write(score, self._last[score][0], D, judged, when)
        for name, flag in (
            ("AnomalyActive", result.anomaly_active),
            ("SpcAlarmActive", result.spc_alarm_active),
            ("AlarmActive", result.alarm_active),
        ):
            await self._write(f"{base}/{name}", flag, B, judged, when)
        if result.events:
            await self._write(f"{base}/LastEvent", result.events[-1].message, S, when=when)
        feed.health = _health(result, feed.spec.channels)

    async def _publish_agent(self) -> None:
        dropped, lag = self.registry.read("loop", "queue_drops", 0), self.publish_lag_ms
        self.overload.observe(time.monotonic(), self.poll_slots_skipped, dropped, lag)
        self.health = with_overload(_site_health(self._lines), self.overload.reason)
        registry = self.registry
        for var in AGENT_VARIABLES:
            await self._write(f"Agent/{var.name}", var.value(registry), var.vtype)

    async def _publish_model(self, feed: LineFeed) -> None:
        if feed.model is None:
            return
        (version, status, last_update), feed.model = feed.model, None
        base = f"Lines/{feed.spec.line}"
        await self._write(f"{base}/ModelVersion", version, S)
        await self._write(f"{base}/ModelStatus", status, S)
        await self._write(f"{base}/ModelLastUpdate", last_update, S)

    async def _publish_explanation(self, feed: LineFeed) -> None:
        if feed.explanation is None:
            return
        (text, ts, event_id, guard), feed.explanation = feed.explanation, None
        when = dt.datetime.fromtimestamp(ts, dt.UTC)
        base = f"Lines/{feed.spec.line}"
        await self._write(f"{base}/LastExplanation", text, S, when=when, always=True)
        await self._write(f"{base}/LastExplanationTime", when, T, when=when, always=True)
        await self._write(f"{base}/LastExplanationEvent", event_id, S, when=when, always=True)
        # Only grounded text is ever published: the template, or an LLM answer that passed.
        await self._write(f"{base}/LastExplanationGrounded", True, B, when=when, always=True)
        await self._write(f"{base}/LastExplanationGuard", guard, S, when=when, always=True)

    async def _publish_events(self) -> None:
        assert self.alarms is not None
        while self._events:
            event = self._events.popleft()
            line = event.line if event.line in self._lines else self.line
            source = self._nodes.get(f"Lines/{line}/Signals/{event.tag}/Value")
            await self.alarms.on_event(event, source)
            if event.kind is EventKind.COMMS:  # the line's own edges are written by publish
                await self._write(f"Lines/{line}/LastEvent", event.message, S)

    async def run(self) -> None:
        """Publish whatever was offered whenever something was, until cancelled; Agent/ and
        Plcs/ every `FIGURES_INTERVAL_S` (their counters change at every poll)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, self._figures_due - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            for name, feed in self._lines.items():
                result, feed.latest = feed.latest, None
                if result is not None:
                    await self._publish_line(result, name)
            await self._publish_events()
            health = with_overload(_site_health(self._lines), self.overload.reason)
            if time.monotonic() >= self._figures_due or health != self.health:  # Health at once
                self._figures_due = time.monotonic() + FIGURES_INTERVAL_S
                await self._publish_agent()
                await publish_plcs(self.plcs, self._write)
            for feed in self._lines.values():
                await self._publish_explanation(feed)
                await self._publish_model(feed)
                await self._publish_learning(feed)

    async def stop(self) -> None:
        """Stop the server and close client sessions."""
        with contextlib.suppress(Exception):
            await self._server.stop()


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _value(reading: TagReading, vtype: ua.VariantType) -> object:
    """What a Value node holds: the reading's text, flag, whole number or number. A reading
    with no value at all (bad before any good one) is null: the status code says why."""
    if vtype is S:
        return reading.text if reading.text is not None else None
    if not math.isfinite(reading.value):
        return None
    if vtype is B:
        return reading.value == 1.0
    if vtype is D:
        return reading.value
    return int(reading.value)


def _site_health(lines: dict[str, LineFeed]) -> str:
    """Agent/Health over the lines: a single line's own, or each degraded line named."""
    if len(lines) == 1:
        return next(iter(lines.values())).health
    healths = [(name, feed.health) for name, feed in lines.items()]
    degraded = [
        f"line {n}: {h.removeprefix('degraded: ')}"
        for n, h in healths
        if h not in ("ok", "starting")
    ]
    if not degraded:
        return "ok"
    if all(h == "starting" for _, h in healths):
        return "starting"
    return "degraded: " + "; ".join(degraded)


def _health(result: LineResult, channels: Sequence[str]) -> str:
    """Agent/Health: ok, or degraded with the model tags not good and how long nothing was
    judged."""
    blind = [
        c for c in channels
        if result.readings.get(c) is None or result.readings[c].quality is not Quality.GOOD
    ]  # fmt: skip
    parts = [f"no good reading of {', '.join(blind)}"] if blind else []
    if not result.judged:
        parts.append(f"the line not judged for {result.unjudged_rows} rows")
    return f"degraded: {'; '.join(parts)}" if parts else "ok"
