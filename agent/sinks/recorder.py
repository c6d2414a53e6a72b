"""The recorder: every polled sample into historian CSVs, written off the event loop.

`offer(sample)` is all the hot path does: an append to a bounded queue (QUEUE_SIZE samples).
Overflow policy: when the writer falls that far behind, the oldest sample is dropped and
counted (`drops`). `run()` takes what has queued every BATCH_S seconds and writes it in a
worker thread (`asyncio.to_thread`, one write at a time) through a `RecordingWriter`
(agent/sinks/recording_file.py: the format, rotation, size bound and fsync).

A failed write (disk full, I/O error, read-only or unwritable directory) stops the recording,
never detection: a `recording` alarm is RAISED through `on_event` with the errno and the
file, the samples offered while stopped are discarded and counted (`missed`), and after
RETRY_S seconds the recorder tries again in a new file; the first write that works CLEARS
the alarm. `aclose()` waits for the write in flight, writes what is queued, fsyncs and closes.

Counters (`RecorderStats`, registered as `recorder`): Agent/RecordingState, RecordedRows,
RecordedBytes, RecordingDrops, RecordingErrors on OPC-UA.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent.config import SiteConfig, Tag
from agent.config.record import RecordConfig
from agent.core.codec import DataType
from agent.ops.counters import CounterRegistry
from agent.sinks.recording_file import FileOpener, FileSummary, OsFile, RecordingWriter
from agent.types import Event, EventKind, EventState, Sample

log = logging.getLogger(__name__)
QUEUE_SIZE = 4096
BATCH_S = 0.25
RETRY_S = 60.0
SEVERITY = 300  # below the process alarms (SPC 500, anomaly 700): the line itself is fine
OnEvent = Callable[[Event], None]


@dataclass
class RecorderStats:
    """The recorder's counters (Agent/Recording*, Agent/Recorded*)."""

    state: str = "starting"  # writing, or "stopped: <errno> <text>" while a write fails
    rows: int = 0
    bytes: int = 0
    files: int = 0
    drops: int = 0  # samples dropped from the full queue
    missed: int = 0  # samples not recorded because the recording was stopped by an error
    errors: int = 0  # failed writes
    writer_cpu_s: float = 0.0  # CPU time of the worker thread's writes


def recorded_tags(config: SiteConfig) -> list[str]:
    """The tags a recording of this site holds: every tag but Modbus strings (text)."""
    return [
        t.name
        for t in config.tags.values()
        if not (isinstance(t, Tag) and t.dtype is DataType.STRING)
    ]


def describe(exc: OSError) -> str:
    """`ENOSPC (No space left on device): <file>` for an OSError."""
    code = errno.errorcode.get(exc.errno or 0, "error")
    text = f"{code} ({exc.strerror or exc})"
    return f"{text}: {exc.filename}" if exc.filename else text


class Recorder:
    """Records the line's samples as rotated, size-bounded, fsynced historian CSVs."""

    def __init__(
        self,
        settings: RecordConfig,
        line: str,
        tags: Iterable[str],
        on_event: OnEvent | None = None,
        registry: CounterRegistry | None = None,
        opener: FileOpener = OsFile,
        on_closed: Callable[[FileSummary], None] | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        self.settings = settings
        self.line = line
        self.writer = RecordingWriter(settings, line, tags, opener, on_closed)
        self.on_event = on_event
        self.retry_s = retry_s
        self.stats = RecorderStats()
        if registry is not None:
            registry.register_part("recorder", self.stats)  # one recorder per line
        self._queue: collections.deque[Sample] = collections.deque(maxlen=QUEUE_SIZE)
        self._inflight: asyncio.Future[OSError | None] | None = None
        self._batch = 0
        self._retry_at: float | None = None  # set while stopped by a failed write
        self._tags: tuple[str, ...] | None = None  # a new tag set for the next write
        self.raised: Event | None = None  # the open recording alarm

    @property
    def stopped(self) -> bool:
        """True while a failed write keeps the recording stopped."""
        return self._retry_at is not None

    def offer(self, sample: Sample) -> None:
        """Queue one sample for recording; never blocks (a full queue drops its oldest)."""
        queue = self._queue
        if len(queue) == QUEUE_SIZE:
            self.stats.drops += 1
        queue.append(sample)

    def retag(self, tags: Iterable[str]) -> None:
        """Record another tag set from the next write on (a new file)."""
        self._tags = tuple(tags)

    async def run(self) -> None:
        """Write what has queued every BATCH_S seconds, until cancelled."""
        interval = min(BATCH_S, self.settings.fsync_s)
        while True:
            await asyncio.sleep(interval)
            await self.write_queued()

    async def write_queued(self) -> None:
        """Write the queued samples now in the worker thread (or discard them while stopped)."""
        if self._retry_at is not None and time.monotonic() < self._retry_at:
            self.stats.missed += len(self._queue)
            self._queue.clear()
            return
        batch = list(self._queue)
        self._queue.clear()
        if not batch and not self.writer.sync_due:
            return
        self._batch = len(batch)
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self._write, batch))
        # Shielded: a cancelled run leaves the thread's write to finish; aclose waits for it.
        failure = await asyncio.shield(self._inflight)
        self._settle(failure)

    def _write(self, batch: list[Sample]) -> OSError | None:
        """In the worker thread: apply a new tag set, write the batch."""
        started = time.thread_time()
        try:
            if self._tags is not None:
                tags, self._tags = self._tags, None
                self.writer.retag(tags)
            self.writer.write(batch)
        except OSError as exc:
            return exc
        finally:
            self.stats.writer_cpu_s += time.thread_time() - started
        return None

    def _settle(self, failure: OSError | None) -> None:
        """On the loop, after a write: counters, and the alarm's edges."""
        self._inflight = None
        stats, writer = self.stats, self.writer
        before = stats.rows
        stats.rows, stats.bytes, stats.files = (
            writer.written_rows,
            writer.written_bytes,
            writer.files,
        )
        if failure is None:
            if self._retry_at is not None or self.raised is not None:
                self._resumed()
            stats.state = "writing"
            return
        stats.errors += 1
        stats.missed += max(self._batch - (stats.rows - before), 0)
        self._retry_at = time.monotonic() + self.retry_s
        if self.raised is None:
            self._stopped(failure)

    def _stopped(self, failure: OSError) -> None:
        text = describe(failure)
        self.stats.state = f"stopped: {text}"
        message = f"recording stopped: {text}; detection goes on; retrying every {self.retry_s:g} s"
        log.error("%s", message)
        self.raised = self._event(
            EventState.RAISED, message, {"errno": errno.errorcode.get(failure.errno or 0, "")}
        )

    def _resumed(self) -> None:
        self._retry_at = None
        current = self.writer.current
        where = str(current.path) if current is not None else str(self.settings.path)
        message = f"recording resumed: writing {where}"
        log.info("%s", message)
        if self.raised is not None:
            self._event(EventState.CLEARED, message, {"raised": self.raised.event_id})
        self.raised = None

    def _event(self, state: EventState, message: str, details: dict[str, object]) -> Event:
        event = Event(
            ts=time.time(),
            line=self.line,
            kind=EventKind.RECORDING,
            state=state,
            detector="recorder",
            severity=SEVERITY,
            message=message,
            details={"path": str(self.settings.path), **details},
        )
        if self.on_event is not None:
            self.on_event(event)
        return event

    async def aclose(self) -> None:
        """Finish the write in flight, write what is queued, fsync and close the file."""
        if self._inflight is not None:
            failure = await asyncio.shield(self._inflight)
            self._settle(failure)
        self._retry_at = None  # the last chance: try once whatever the back-off says
        await self.write_queued()
        failure = await asyncio.to_thread(self._close)
        if failure is not None:
            self.stats.errors += 1
            log.error("recording not closed cleanly: %s", describe(failure))

    def _close(self) -> OSError | None:
        try:
            self.writer.close()
        except OSError as exc:
            return exc
        return None
