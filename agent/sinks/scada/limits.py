"""Server limits, agent counters, and how a reading's quality becomes an OPC-UA status code."""

from __future__ import annotations

from dataclasses import dataclass

from asyncua import Server, ua
from asyncua.server.internal_session import InternalSession

from agent.config.opcua import ScadaLimits
from agent.types import Quality, TagReading

# Reason text from the sources -> the Bad status code that says it best (first match wins).
_BAD_REASONS = (
    (("timed out", "timeout", "deadline"), ua.StatusCodes.BadTimeout),
    (("exception",), ua.StatusCodes.BadDeviceFailure),
    (("crc", "garbled", "frame", "byte count"), ua.StatusCodes.BadCommunicationError),
    (("waiting",), ua.StatusCodes.BadWaitingForInitialData),
    (("bad node id",), ua.StatusCodes.BadNodeIdUnknown),
)


@dataclass
class AgentCounters:
    """Agent health figures published under Objects/Agent."""

    loop_latency_ms: float = 0.0
    samples_processed: int = 0
    sample_queue_drops: int = 0
    health: str = "starting"
    journal_ok: bool = True
    journal_write_errors: int = 0
    journal_dropped: int = 0
    explainer_queue_drops: int = 0
    explanations_llm: int = 0
    explanations_template: int = 0
    explainer_rejections: int = 0
    explainer_worker_failures: int = 0
    snapshots_written: int = 0
    snapshots_skipped: int = 0
    snapshots_failed: int = 0
    snapshots_restored: int = 0
    snapshots_refused: int = 0
    snapshot_refused_reason: str = ""


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
        return ua.StatusCodes.UncertainSensorNotAccurate
    reason = reading.reason.lower()
    for words, code in _BAD_REASONS:
        if any(w in reason for w in words):
            return code
    return ua.StatusCodes.BadNoCommunication


def apply_limits(server: Server, limits: ScadaLimits) -> None:
    """Cap connections, sessions, subscriptions and queues so clients cannot starve the loop."""
    iserver = server.iserver
    iserver.max_connections = limits.max_connections
    iserver.max_subscriptions = limits.max_subscriptions
    iserver.max_monitored_item_queue_size = limits.max_queue_size
    # unacknowledged publish results kept per subscription for Republish: bounded memory
    iserver.max_unacked_messages_per_subscription = 64
    iserver.max_pending_messages_per_connection = 100
    iserver.max_pending_activation_seconds = 10.0
    # A client that drops its connection while it holds subscriptions leaves its session for
    # a possible transfer until the session times out; keep that short, or a flapping HMI
    # would use up max_sessions for minutes.
    iserver.max_session_timeout_ms = 60_000
    # asyncua counts sessions in a class attribute: one server per process, so this is ours.
    # A stopped server does not close its sessions, so a restarted one starts the count anew
    # (it has none yet) instead of inheriting phantom sessions that would lock clients out.
    InternalSession.max_connections = limits.max_sessions
    InternalSession._current_connections = 0
