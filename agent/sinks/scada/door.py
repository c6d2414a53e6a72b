"""The door before any login: connection slots, the handshake deadline, bounded buffers.

Anyone who can reach the port can open TCP connections, so nothing a connection holds before
its client has proven a trusted certificate may lock a legitimate client out:

- A connection has `handshake_timeout_s` from connect to an activated session; a socket that
  sends nothing, stops after Hello, or only opens the unencrypted discovery channel is closed.
- A connection counts as trusted once its secure channel carries a certificate the trusted
  directory accepts (checked when the channel opens). Trusted connections may take every one
  of `max_connections`; the others may not take the last `reserved_for_trusted` sessions.
- `max_connections_per_address` caps the untrusted connections of one address. A new
  connection that finds its address, or the server, full closes the oldest untrusted
  connection without a session (it has had its chance); only when none is left to close is
  the new one refused. So idle sockets cannot keep a trusted client out: its own connection
  becomes trusted within milliseconds of connecting.
- Before it is trusted, a connection may buffer at most one chunk of input and
  `UNTRUSTED_WRITE_BUFFER` bytes of answers it does not read; past that it is closed.

`ConnectionBook` is the bookkeeping (no I/O, tested through real sockets); `GuardedProtocol` and
`GuardedBinaryServer` plug it into asyncua's TCP server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol

from agent.config.opcua import ScadaLimits

audit = logging.getLogger("lineside.audit")
log = logging.getLogger(__name__)
UNTRUSTED_WRITE_BUFFER = 256 * 1024
_ORDER = itertools.count()


@dataclass(eq=False)
class Slot:
    """One connection's place: its address, whether it is trusted, and how to drop it."""

    address: str
    holds_session: Callable[[], bool]
    drop: Callable[[], None]
    trusted: bool = False
    order: int = field(default_factory=lambda: next(_ORDER))


class ConnectionBook:
    """Who holds which connection slot, and whom to close when a new connection needs one."""

    def __init__(self, limits: ScadaLimits) -> None:
        self.max_connections = limits.max_connections
        self.per_address = limits.max_connections_per_address
        self.untrusted_sessions_allowed = max(0, limits.max_sessions - limits.reserved_for_trusted)
        self.slots: list[Slot] = []
        self.refused = 0  # connections refused at once: nobody could be closed for them
        self.evicted = 0  # untrusted connections closed to make room
        self.expired = 0  # connections closed at the handshake deadline

    def admit(self, address: str, holds_session: Callable[[], bool],
              drop: Callable[[], None]) -> Slot | None:  # fmt: skip
        """A slot for a new connection from `address`, or None (refused)."""
        same = [s for s in self.slots if not s.trusted and s.address == address]
        if len(same) >= self.per_address and not self._evict(same, f"address {address} full"):
            self.refused += 1
            return None
        if len(self.slots) >= self.max_connections and not self._evict(self.slots, "server full"):
            self.refused += 1
            return None
        slot = Slot(address, holds_session, drop)
        self.slots.append(slot)
        return slot

    def _evict(self, candidates: list[Slot], why: str) -> bool:
        for slot in sorted(candidates, key=lambda s: s.order):
            if not slot.trusted and not slot.holds_session():
                self.release(slot)
                self.evicted += 1
                audit.warning(
                    "closed an untrusted connection from %s without a session: %s",
                    slot.address, why,
                )  # fmt: skip
                slot.drop()
                return True
        return False

    def release(self, slot: Slot) -> None:
        """Free the slot of a closed connection (again is harmless)."""
        if slot in self.slots:
            self.slots.remove(slot)

    def may_open_untrusted_session(self) -> bool:
        """True while a session without a trusted certificate leaves the reserved slots free."""
        held = sum(1 for s in self.slots if not s.trusted and s.holds_session())
        return held < self.untrusted_sessions_allowed


class GuardedProtocol(OPCUAProtocol):
    """asyncua's per-connection protocol, admitted through the book and under a deadline."""

    def __init__(self, *args: Any, book: ConnectionBook, deadline_s: float,
                 make_processor: Callable[..., Any], **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.book = book
        self.deadline_s = deadline_s
        self.make_processor = make_processor
        self.slot: Slot | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def holds_session(self) -> bool:
        """True once this connection's session is activated."""
        session = self.processor.session if self.processor is not None else None
        return session is not None and session.is_activated()

    def connection_made(self, transport: Any) -> None:
        """Admit the connection (or close it) and start its handshake deadline."""
        self.peer_name = transport.get_extra_info("peername")
        address = str(self.peer_name[0]) if self.peer_name else "unknown"
        self.slot = self.book.admit(address, self.holds_session, transport.abort)
        if self.slot is None:
            audit.warning("refused a connection from %s: every slot is held", address)
            transport.abort()
            return
        transport.set_write_buffer_limits(high=UNTRUSTED_WRITE_BUFFER)
        self.transport = transport
        self.processor = self.make_processor(self.iserver, transport, self.limits, self.slot)
        self.processor.set_policies(self.policies)
        self.iserver.asyncio_transports.append(transport)
        self.clients.append(self)
        self._task = asyncio.create_task(self._process_received_message_loop())
        self._deadline = asyncio.get_running_loop().call_later(self.deadline_s, self._expire)

    def _expire(self) -> None:
        if self.holds_session() or self.transport is None or self.slot is None:
            return
        self.book.expired += 1
        log.info(
            "closing the connection from %s: no activated session within %.1f s",
            self.slot.address, self.deadline_s,
        )  # fmt: skip
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        """Parse as asyncua does, but never buffer more than one chunk of a message."""
        super().data_received(data)
        if len(self._buffer) > self.limits.max_recv_buffer and self.transport is not None:
            log.warning("closing the connection from %s: a chunk over the size limit",
                        self.peer_name)  # fmt: skip
            self._buffer = b""
            self.transport.abort()

    def pause_writing(self) -> None:
        """A client that does not read its answers before it is trusted is closed."""
        if self.slot is not None and not self.slot.trusted and self.transport is not None:
            log.warning("closing the connection from %s: it does not read its answers",
                        self.slot.address)  # fmt: skip
            self.transport.abort()

    def connection_lost(self, ex: BaseException | None) -> None:
        """Clean up as asyncua does and free the slot."""
        if self._deadline is not None:
            self._deadline.cancel()
        if self.slot is not None:
            self.book.release(self.slot)
        super().connection_lost(ex)


class GuardedBinaryServer(BinaryServer):
    """asyncua's TCP server making `GuardedProtocol`s."""

    def __init__(self, *args: Any, book: ConnectionBook, deadline_s: float,
                 make_processor: Callable[..., Any]) -> None:  # fmt: skip
        super().__init__(*args)
        self.book = book
        self.deadline_s = deadline_s
        self.make_processor = make_processor

    def _make_protocol(self) -> GuardedProtocol:
        return GuardedProtocol(
            iserver=self.iserver, policies=self._policies, clients=self.clients,
            closing_tasks=self.closing_tasks, limits=self.limits, book=self.book,
            deadline_s=self.deadline_s, make_processor=self.make_processor,
        )  # fmt: skip
