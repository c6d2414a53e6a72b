"""Server limits, the Agent/ variables and their sources, and a reading's status code."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncua import Server, ua
from asyncua.server.internal_session import InternalSession

from agent.config.opcua import ScadaLimits
from agent.core.quality import NOT_FINITE, OUTSIDE_RANGE
from agent.ops.counters import CounterRegistry
from agent.sinks.scada.channel import GuardedInternalServer
from agent.types import Quality, TagReading

MAX_REQUEST_BYTES = 8 * 1024 * 1024
# Reason text from the sources -> the Bad status code that says it best (first match wins;
# the table in docs/quality.md). No connection at all is BadNoCommunication, whatever the
# connect saw; a connection whose device did not answer in time is BadTimeout.
_BAD_REASONS = (
    (("connect to", "refused", "unreachable", "not connected", "not open", "cannot open"),
     ua.StatusCodes.BadNoCommunication),
    (("no reply within", "no complete reply", "no answer", "timed out", "timeout", "deadline"),
     ua.StatusCodes.BadTimeout),
    ((NOT_FINITE,), ua.StatusCodes.BadSensorFailure),
    (("exception",), ua.StatusCodes.BadDeviceFailure),
    (("crc", "garbled", "frame", "byte count", "transaction id", "short reply"),
     ua.StatusCodes.BadCommunicationError),
    (("waiting",), ua.StatusCodes.BadWaitingForInitialData),
    (("bad node id",), ua.StatusCodes.BadNodeIdUnknown),
)  # fmt: skip


@dataclass(frozen=True)
class AgentVariable:
    """One variable of Objects/Agent: its browse name, type, description and source.

    The value is attribute `field` of the view registered as `source` in the agent's
    `CounterRegistry`, read when the server publishes; `default` while none is registered
    (the explainer is off, a server without an agent). `shape` turns it into what is
    published (rounding).
    """

    name: str
    vtype: ua.VariantType
    text: str
    source: str
    field: str
    default: object = 0
    shape: Callable[[Any], object] | None = None

    def read(self, registry: CounterRegistry) -> Any:
        """The count as its service holds it now."""
        return registry.read(self.source, self.field, self.default)

    def value(self, registry: CounterRegistry) -> object:
        """What is published now."""
        value = self.read(registry)
        return value if self.shape is None else self.shape(value)


def _ms(value: float) -> float:
    return round(value, 2)


D, S, B = ua.VariantType.Double, ua.VariantType.String, ua.VariantType.Boolean
U64, U32 = ua.VariantType.UInt64, ua.VariantType.UInt32
V = AgentVariable
#: Objects/Agent, in browse order. Sources: `opcua` the server itself (server.py), `loop` the
#: detection loop (agent/runtime/app.py), `journal` (agent/sinks/journal.py), `explainer`
#: (agent/sinks/explainer.py), `snapshots` (agent/runtime/snapshots.py), `recorder`
#: (agent/sinks/recorder.py).
AGENT_VARIABLES: tuple[AgentVariable, ...] = (
    V("Health", S, "ok, or degraded with the reason", "opcua", "health", "starting"),
    V("UptimeS", D, "Seconds since the OPC-UA server started", "opcua", "uptime_s", 0.0, round),
    V("LoopLatencyMs", D, "Detection time of the last sample, milliseconds",
      "loop", "latency_ms", 0.0, _ms),
    V("SamplesProcessed", U64, "Samples through the detection loop", "loop", "processed"),
    V("SampleQueueDrops", U64, "Samples dropped because the loop fell behind",
      "loop", "queue_drops"),
    V("PublishCoalesced", U64, "Results superseded before they were published",
      "opcua", "coalesced"),
    V("PollSlotsSkipped", U64, "Poll slots missed because a poll outlasted its interval",
      "opcua", "poll_slots_skipped"),
    V("PublishLagMs", D, "Poll to address space of the last published values, milliseconds",
      "opcua", "publish_lag_ms", 0.0, _ms),
    V("EventDrops", U64, "Alarm edges dropped from a full publish queue", "opcua", "event_drops"),
    V("Sessions", U32, "OPC-UA client sessions open now", "opcua", "sessions"),
    V("LoginFailures", U64, "Refused logins since start", "opcua", "login_failures"),
    V("CertificatesRejected", U64, "Client certificates refused since start",
      "opcua", "certificates_rejected"),
    V("JournalOk", B, "False while events cannot be journaled (disk full, read-only)",
      "journal", "healthy", True),
    V("JournalWriteErrors", U64, "Failed journal commits since start", "journal", "write_errors"),
    V("JournalDropped", U64, "Journal records refused because its queue was full",
      "journal", "dropped"),
    V("ExplainerQueueDrops", U64, "Alarms not explained: the oldest dropped from a full queue",
      "explainer", "dropped"),
    V("ExplanationsLlm", U64, "Explanations phrased by the LLM and passed by the guard",
      "explainer", "llm_accepted"),
    V("ExplanationsTemplate", U64, "Explanations that fell back to (or were) the template",
      "explainer", "template_used"),
    V("ExplainerRejections", U64, "LLM answers refused by the grounding guard or lost",
      "explainer", "rejections"),
    V("ExplainerWorkerFailures", U64, "Explainer worker crashes and hangs, each restarted",
      "explainer", "worker_failures"),
    V("SnapshotsWritten", U64, "Detector state snapshots written to disk",
      "snapshots", "written"),
    V("SnapshotsSkipped", U64, "Snapshots skipped: the previous write was still running",
      "snapshots", "skipped"),
    V("SnapshotsFailed", U64, "Snapshot writes that failed (disk full, read-only)",
      "snapshots", "failed"),
    V("SnapshotsRestored", U64, "Detector state restored from a snapshot at start (0 or 1)",
      "snapshots", "restored"),
    V("SnapshotsRefused", U64, "Snapshots found at start but not restored (0 or 1)",
      "snapshots", "refused"),
    V("SnapshotRefusedReason", S, "Why: other-model, too-old, corrupt, ... ('' if none)",
      "snapshots", "refusal", ""),
    V("RecordingState", S, "Historian CSV recording: off, writing, or stopped: <errno> <file>",
      "recorder", "state", "off"),
    V("RecordedRows", U64, "Rows written to the recording since start", "recorder", "rows"),
    V("RecordedBytes", U64, "Bytes written to the recording since start", "recorder", "bytes"),
    V("RecordingDrops", U64, "Samples dropped from the recorder's full queue",
      "recorder", "drops"),
    V("RecordingErrors", U64, "Failed recording writes (disk full, read-only, I/O error)",
      "recorder", "errors"),
)  # fmt: skip
_BY_KEY = {re.sub(r"(?<!^)(?=[A-Z])", "_", v.name).lower(): v for v in AGENT_VARIABLES}


class AgentCounters:
    """A live, read-only view of the Agent/ figures by snake-case name, for the demo view,
    benchmarks and tests: `counters.samples_processed` is Agent/SamplesProcessed as its
    service holds it now (unrounded)."""

    __slots__ = ("_registry",)

    def __init__(self, registry: CounterRegistry) -> None:
        self._registry = registry

    def __getattr__(self, key: str) -> Any:
        variable = _BY_KEY.get(key)
        if variable is None:
            raise AttributeError(f"no Agent/ variable is called {key!r}")
        return variable.read(self._registry)


def status_of(reading: TagReading) -> int:
    """The status code for a reading: its quality, and for bad ones the reason's kind.

    A reason that is already an OPC-UA status name (from an OPC-UA source) is kept as is.
    """
    if reading.quality is Quality.GOOD:
        return ua.StatusCodes.Good
    named = getattr(ua.StatusCodes, reading.reason, None)
    if isinstance(named, int):
        return named
    if reading.quality is Quality.UNCERTAIN:
        if OUTSIDE_RANGE in reading.reason:
            return ua.StatusCodes.UncertainEngineeringUnitsExceeded
        return ua.StatusCodes.UncertainSensorNotAccurate
    reason = reading.reason.lower()
    for words, code in _BAD_REASONS:
        if any(w in reason for w in words):
            return code
    return ua.StatusCodes.BadNoCommunication


def apply_limits(server: Server, limits: ScadaLimits) -> None:
    """Cap connections, sessions, subscriptions and queues so clients cannot starve the loop."""
    iserver = server.iserver
    iserver.max_connections = limits.max_connections  # held by the door's ConnectionBook
    iserver.max_subscriptions = limits.max_subscriptions
    if isinstance(iserver, GuardedInternalServer):
        iserver.session_limits = limits  # per-session subscriptions and monitored items
    iserver.max_monitored_item_queue_size = limits.max_queue_size
    # unacknowledged publish results kept per subscription for Republish: bounded memory
    iserver.max_unacked_messages_per_subscription = 64
    iserver.max_pending_messages_per_connection = 100
    # the door's own deadline (door.py) closes a connection without a session; asyncua's
    # would close it gently, waiting for a client that does not read
    iserver.max_pending_activation_seconds = 0
    # A request is a few hundred kB at most (5,000 monitored items); asyncua would buffer a
    # 100 MB one from anyone who opened the unencrypted discovery channel.
    server.limits.max_message_size = MAX_REQUEST_BYTES
    server.limits.max_chunk_count = MAX_REQUEST_BYTES // server.limits.max_recv_buffer + 1
    # A client that drops its connection while it holds subscriptions leaves its session for
    # a possible transfer until the session times out; keep that short, or a flapping HMI
    # would use up max_sessions for minutes.
    iserver.max_session_timeout_ms = 60_000
    # asyncua counts sessions in a class attribute: one server per process, so this is ours.
    # A stopped server does not close its sessions, so a restarted one starts the count anew
    # (it has none yet) instead of inheriting phantom sessions that would lock clients out.
    InternalSession.max_connections = limits.max_sessions
    InternalSession._current_connections = 0
