"""Modbus RTU transports: on a serial port (pyserial) and over TCP (serial device servers).

Why our own framing instead of pymodbus's RTU client: pymodbus's async client checks only the
device id of an RTU answer. It does not check the function code or the byte count against the
request, and it gives us no way to flush the line after a timeout. RTU has no transaction id,
so a late answer to the previous request to the same unit with the same count would be taken
as the answer to the next one: the values of the previous poll, silently, with good quality.

So the requests are framed and the answers checked by our own pure functions
(agent.sources.rtu_framing), and this module talks to the port with pyserial:

- before a request: at least `inter_frame_s` of silence since the last byte on the bus, then
  the input buffer is flushed, so nothing that arrived between requests is read as an answer;
- an answer is accepted only if its CRC is good and its unit id, function code and byte count
  are those of the request;
- after a timeout or a garbled or mismatched frame, whatever is still arriving is read and
  thrown away until the line has been silent for a while (at least 3.5 character times, with a
  cap for a babbling line), and the input buffer is flushed again before `LinkError` is raised.

A reply arriving after the silence window *and* after the next request went out would still be
indistinguishable from the next answer (RTU cannot tell them apart when unit, function and count
agree); `timeout_s` must therefore exceed the slaves' worst-case response time, as on any RTU
master.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
import weakref
from collections.abc import Callable
from typing import TypeVar, cast

import serial as pyserial

from agent.config import SerialSettings
from agent.sources.rtu_framing import (
    BIT_FUNCTIONS,
    MAX_FRAME_LENGTH,
    REGISTER_FUNCTIONS,
    answer_length,
    build_read_request,
    exchange_failure,
    function_for,
    parse_read_response,
    request_text,
)
from agent.sources.transport import LinkError

T = TypeVar("T")

# What a port that went away raises: pyserial wraps most OS errors, but not termios.error
# (tcflush/tcsetattr on a hung-up tty or an EINVAL setting), which is no OSError.
try:
    from termios import error as _TermiosError
except ImportError:  # pragma: no cover - not POSIX

    class _TermiosError(Exception):  # type: ignore[no-redef]
        """Stands in for termios.error where there is no termios."""


PORT_ERRORS: tuple[type[Exception], ...] = (pyserial.SerialException, OSError, _TermiosError)
OPEN_ERRORS: tuple[type[Exception], ...] = (*PORT_ERRORS, ValueError)  # ValueError: bad setting


def _os_error(exc: BaseException) -> str:
    """termios.error prints as a tuple; say it like an OSError."""
    if isinstance(exc, _TermiosError) and len(exc.args) == 2:
        return f"[Errno {exc.args[0]}] {exc.args[1]}"
    return str(exc)


# After a failed exchange: the line must be silent this long before the next request, at
# least 3.5 character times, and at least this floor (USB serial adapters deliver bytes in
# chunks: an FTDI chip holds them up to its 16 ms latency timer).
DRAIN_SILENCE_FLOOR_S = 0.02
# ... but a babbling line must not hold the hub: give up draining after this much plus the
# time a maximal frame takes on the wire.
DRAIN_CAP_S = 0.1
# The serial port is opened once with this read timeout and never reconfigured: every wait is
# a loop of reads of at most this long. (Changing the pyserial timeout re-runs tcsetattr; a
# driver that silently dropped a setting at open, e.g. parity on a pty, then fails with EINVAL.)
READ_SLICE_S = 0.005
# The same for RTU over TCP: the network and the device server's packing delay add jitter
# between the pieces of a frame, so the silence that ends a drain is longer.
TCP_DRAIN_SILENCE_S = 0.05
TCP_DRAIN_CAP_S = 0.5


# --- serial port ----------------------------------------------------------------------------


class SerialRtuTransport:
    """Modbus RTU master on a serial port (RS-485 adapter, UART), one request at a time.

    All port I/O runs in one dedicated thread, so the asyncio loop never blocks and exchanges
    never overlap on the wire, even if an awaiting task is cancelled mid-request (the thread
    finishes that exchange, drain included, before it starts the next). `close()` queues the
    port close behind any exchange in progress, so a port is never closed under a read. The
    thread lives as long as the transport: it is stopped when the transport is garbage
    collected (or at interpreter exit), via `weakref.finalize`; between connections it idles.
    """

    def __init__(self, serial: SerialSettings, timeout_s: float) -> None:
        self.settings = serial
        self.timeout_s = timeout_s
        s = serial
        self.description = f"modbus-rtu {s.port} {s.baudrate} {s.bytesize}{s.parity}{s.stopbits}"
        self._silence_s = max(3.5 * s.char_time_s, s.inter_frame_s, DRAIN_SILENCE_FLOOR_S)
        self._drain_cap_s = DRAIN_CAP_S + MAX_FRAME_LENGTH * s.char_time_s
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"rtu:{s.port}"
        )
        self._finalizer = weakref.finalize(self, self._executor.shutdown, wait=False)
        # Touched only on the event loop:
        self._open = False
        self._port_used = False
        # Touched only in the I/O thread:
        self._port: pyserial.Serial | None = None
        self._last_bus_activity = 0.0  # monotonic time of the last byte sent or received

    @property
    def connected(self) -> bool:
        """True while the port is open (as far as the loop knows)."""
        return self._open

    async def connect(self) -> None:
        """Open the port; LinkError(link_down=True) naming the port and the OS error."""
        self.close()
        self._port_used = True
        await self._in_thread(self._open_port)
        self._open = True

    def close(self) -> None:
        """Mark closed now; the port itself is closed by the I/O thread after any exchange."""
        self._open = False
        if not self._port_used:
            return
        try:
            self._executor.submit(self._close_port)
        except RuntimeError:  # executor already shut down (interpreter exit): close here
            self._close_port()

    async def read_registers(self, unit: int, table: str, start: int, count: int) -> list[int]:
        """Read holding (3) or input (4) registers."""
        function = function_for(table, REGISTER_FUNCTIONS)
        return cast(list[int], await self._request(unit, function, start, count))

    async def read_bits(self, unit: int, table: str, start: int, count: int) -> list[bool]:
        """Read coils (1) or discrete inputs (2)."""
        function = function_for(table, BIT_FUNCTIONS)
        return cast(list[bool], await self._request(unit, function, start, count))

    async def _request(
        self, unit: int, function: int, start: int, count: int
    ) -> list[int] | list[bool]:
        if not self._open:
            request = request_text(unit, function, count, start)
            raise LinkError(f"{request}: {self.settings.port} is not open", link_down=True)
        frame = build_read_request(unit, function, start, count)
        try:
            return await self._in_thread(self._exchange, frame, unit, function, start, count)
        except LinkError as exc:
            if exc.link_down:
                self._open = False
            raise

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # Everything below runs in the I/O thread.

    def _open_port(self) -> None:
        s = self.settings
        self._close_port()
        try:
            port = pyserial.Serial(
                port=s.port,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=READ_SLICE_S,
                write_timeout=max(self.timeout_s, 0.1),
                exclusive=True,  # a second master on the same port would garble both
            )
        except OPEN_ERRORS as exc:
            why = _os_error(exc)
            raise LinkError(f"cannot open serial port {s.port}: {why}", link_down=True) from exc
        try:
            port.reset_input_buffer()
        except PORT_ERRORS as exc:
            port.close()
            raise LinkError(f"serial port {s.port}: {_os_error(exc)}", link_down=True) from exc
        self._port = port
        self._last_bus_activity = time.monotonic()  # the line's state is unknown: wait a gap

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _exchange(
        self, frame: bytes, unit: int, function: int, start: int, count: int
    ) -> list[int] | list[bool]:
        request = request_text(unit, function, count, start)
        port = self._port
        if port is None:
            raise LinkError(f"{request}: {self.settings.port} is not open", link_down=True)
        try:
            return self._transact(port, frame, request, unit, function, start, count)
        except PORT_ERRORS as exc:
            # An unplugged USB adapter: reads fail or report readiness without data.
            self._close_port()
            where = f"serial port {self.settings.port}"
            raise LinkError(f"{request}: {where}: {_os_error(exc)}", link_down=True) from exc

    def _transact(
        self,
        port: pyserial.Serial,
        frame: bytes,
        request: str,
        unit: int,
        function: int,
        start: int,
        count: int,
    ) -> list[int] | list[bool]:
        gap = self._last_bus_activity + self.settings.inter_frame_s - time.monotonic()
        if gap > 0:
            time.sleep(gap)
        port.reset_input_buffer()
        port.write(frame)
        port.flush()  # tcdrain: returns once the frame has left the UART
        self._last_bus_activity = time.monotonic()
        deadline = self._last_bus_activity + self.timeout_s
        answer = self._read(port, 3, deadline)
        want = None
        if len(answer) == 3:
            want = answer_length(answer, function, count)
            if want is not None:
                answer += self._read(port, want - 3, deadline)
        if want is not None and len(answer) == want:
            try:
                return parse_read_response(answer, unit, function, count, start=start)
            except LinkError:
                self._drain(port)
                raise
        mismatched = want is None and len(answer) == 3
        answer += self._drain(port)
        raise exchange_failure(answer, mismatched, self.timeout_s, unit, function, count, start)

    def _read(self, port: pyserial.Serial, size: int, deadline: float) -> bytes:
        """Up to `size` bytes, returning early when they are all there or at the deadline."""
        buffer = bytearray()
        while len(buffer) < size and time.monotonic() < deadline:
            chunk = port.read(size - len(buffer))  # returns after READ_SLICE_S at the latest
            if chunk:
                buffer += chunk
                self._last_bus_activity = time.monotonic()
        return bytes(buffer)

    def _drain(self, port: pyserial.Serial) -> bytes:
        """Read and discard until the line is silent (or the cap), then flush the input."""
        drained = bytearray()
        give_up = time.monotonic() + self._drain_cap_s
        last = time.monotonic()  # a reply may be just starting: wait a full window
        while time.monotonic() < give_up:
            chunk = port.read(MAX_FRAME_LENGTH)
            now = time.monotonic()
            if chunk:
                drained += chunk
                last = self._last_bus_activity = now
            elif now - last >= self._silence_s:
                break
        port.reset_input_buffer()
        return bytes(drained)


# --- RTU over TCP ---------------------------------------------------------------------------


class _Receiver(asyncio.Protocol):
    """What the device server sends, kept in a buffer that can be flushed like a serial port's.

    (Stream readers offer no way to drop what is buffered without awaiting it, which is what
    "flush before the request" needs.)
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost: str | None = None
        self._arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if len(self.buffer) > 64 * MAX_FRAME_LENGTH:
            self.buffer.clear()  # nobody asked for this much: a babbling peer
        self.buffer += data
        self._arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = f"connection lost: {exc}" if exc else "connection closed by the peer"
        self._arrived.set()

    async def wait_for_data(self, deadline: float) -> None:
        """Until more data arrives, the connection is lost, or the loop time `deadline`."""
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._arrived.wait()

    async def read(self, size: int, deadline: float) -> bytes:
        """Up to `size` bytes by the loop time `deadline`."""
        loop = asyncio.get_running_loop()
        while len(self.buffer) < size and self.lost is None and loop.time() < deadline:
            await self.wait_for_data(deadline)
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out

    async def drain(self, silence_s: float, cap_s: float) -> bytes:
        """Take everything until nothing arrived for `silence_s` (or `cap_s` passed)."""
        loop = asyncio.get_running_loop()
        drained = bytearray()
        last = loop.time()
        give_up = last + cap_s
        while True:
            if self.buffer:
                drained += self.buffer
                self.buffer.clear()
                last = loop.time()
            end = min(last + silence_s, give_up)
            if self.lost is not None or loop.time() >= end:
                return bytes(drained)
            await self.wait_for_data(end)


class RtuOverTcpTransport:
    """RTU frames over a TCP socket: a serial device server (e.g. Moxa NPort, "TCP server"
    mode) that puts our bytes on its RS-485 port and sends back what the slaves answer.

    The same checks as on a serial port, and one exchange on the wire at a time, even when a
    caller is cancelled. After a timeout or a garbled frame, what still arrives is drained until
    the socket has been silent for `TCP_DRAIN_SILENCE_S`, and the buffer is flushed before
    every request.
    """

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.description = f"modbus-rtu-over-tcp {host}:{port}"
        self._receiver: _Receiver | None = None
        self._in_flight: asyncio.Future[list[int] | list[bool]] | None = None

    @property
    def connected(self) -> bool:
        """True while the TCP connection is open."""
        return self._receiver is not None and self._receiver.lost is None

    async def connect(self) -> None:
        """Open the TCP connection under the timeout."""
        self.close()
        loop = asyncio.get_running_loop()
        receiver = _Receiver()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            async with asyncio.timeout(self.timeout_s):
                await loop.create_connection(lambda: receiver, self.host, self.port)
        except (TimeoutError, OSError) as exc:
            if receiver.transport is not None:
                receiver.transport.close()
            raise LinkError(
                f"connect to {self.host}:{self.port} failed: {exc or 'timeout'}", link_down=True
            ) from exc
        self._receiver = receiver

    def close(self) -> None:
        """Close the connection."""
        receiver, self._receiver = self._receiver, None
        if receiver is not None and receiver.transport is not None:
            receiver.transport.close()

    async def read_registers(self, unit: int, table: str, start: int, count: int) -> list[int]:
        """Read holding (3) or input (4) registers."""
        function = function_for(table, REGISTER_FUNCTIONS)
        return cast(list[int], await self._exchange(unit, function, start, count))

    async def read_bits(self, unit: int, table: str, start: int, count: int) -> list[bool]:
        """Read coils (1) or discrete inputs (2)."""
        function = function_for(table, BIT_FUNCTIONS)
        return cast(list[bool], await self._exchange(unit, function, start, count))

    async def _exchange(
        self, unit: int, function: int, start: int, count: int
    ) -> list[int] | list[bool]:
        # Like the serial port's I/O thread: an exchange runs to its end (answer, or deadline
        # and drain) even if the caller is cancelled, and the next waits for it, so an answer
        # to a cancelled request is never read as the answer to the next.
        previous = self._in_flight
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        task = asyncio.ensure_future(self._transact(unit, function, start, count))
        task.add_done_callback(_retrieve)  # its outcome may have no one left to await it
        self._in_flight = task
        return await asyncio.shield(task)

    async def _transact(
        self, unit: int, function: int, start: int, count: int
    ) -> list[int] | list[bool]:
        request = request_text(unit, function, count, start)
        receiver = self._receiver
        if receiver is None or receiver.lost is not None or receiver.transport is None:
            why = receiver.lost if receiver is not None and receiver.lost else "not connected"
            raise LinkError(f"{request}: {why}", link_down=True)
        frame = build_read_request(unit, function, start, count)
        receiver.buffer.clear()
        receiver.transport.write(frame)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        answer = await receiver.read(3, deadline)
        want = None
        if len(answer) == 3:
            want = answer_length(answer, function, count)
            if want is not None:
                answer += await receiver.read(want - 3, deadline)
        if want is not None and len(answer) == want:
            try:
                return parse_read_response(answer, unit, function, count, start=start)
            except LinkError:
                await receiver.drain(TCP_DRAIN_SILENCE_S, TCP_DRAIN_CAP_S)
                raise
        if receiver.lost is not None:
            raise LinkError(f"{request}: {receiver.lost}", link_down=True)
        mismatched = want is None and len(answer) == 3
        answer += await receiver.drain(TCP_DRAIN_SILENCE_S, TCP_DRAIN_CAP_S)
        raise exchange_failure(answer, mismatched, self.timeout_s, unit, function, count, start)


def _retrieve(task: asyncio.Future[list[int] | list[bool]]) -> None:
    if not task.cancelled():
        task.exception()
