"""The recorder's files: historian CSV rows, rotation, the size bound, fsync. Synchronous.

Format (what `lineside-export train` and `agent.core.tabular.read_csv` read)::

    timestamp,<tag1>,<tag2>,...,quality:<tag1>,quality:<tag2>,...
    2025-03-04T05:06:07.250Z,12.5,,...,good,bad,...

One row per sample of the line: each sample refreshes the latest reading of its tags and the
row holds every tag's latest reading, stamped with that sample's own time (ISO 8601, UTC,
milliseconds). A value is empty unless its quality is good; `quality:<tag>` is `good`, `bad`
or `uncertain` (a tag not read yet is `bad`). A tag name is a plain identifier, so
`quality:<tag>` can never be a tag. Every file starts with the header.

Files are `<line>-YYYYmmddTHHMMSSZ.csv` (the time of their first row; `-1`, `-2`... when that
name is taken), in one directory. A new file starts once the current one holds `rotate_mb`
MiB or spans `rotate_s` seconds of sample time, and when the tag set changes. Before a new
file opens, the oldest files of the line are deleted until the closed ones plus a full new one
fit in `max_mb`. Files are written with `os.write` on a descriptor (no user-space buffer) and
fsynced every `fsync_s`, at rotation and at close; the directory is fsynced after a file is
created or removed. A failed write cuts the file back to its last whole row, so every file
ends in a complete row whatever the disk did.

The file operations go through `FileOpener` (one call, returning a `RecordingFile`), the seam
the tests use to make a disk fill up.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from agent.config.record import RecordConfig
from agent.core.tabular import QUALITY_PREFIX, recording_order
from agent.types import Quality, Sample, TagReading

MIB = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_NOT_READ = TagReading(math.nan, Quality.BAD, "not read yet")


class RecordingFile(Protocol):
    """An open recording: raw writes, fsync, cut back, close."""

    def write(self, data: bytes) -> int:
        """Write some of `data` at the end; return how many bytes were written."""
        ...

    def fsync(self) -> None:
        """Make what was written durable."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file back to `size` bytes."""
        ...

    def close(self) -> None:
        """Close the descriptor."""
        ...


FileOpener = Callable[[Path], RecordingFile]


class OsFile:
    """A `RecordingFile` on an OS file descriptor, opened for exclusive creation."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)

    def write(self, data: bytes) -> int:
        """One os.write."""
        return os.write(self.fd, data)

    def fsync(self) -> None:
        """os.fsync of the descriptor."""
        os.fsync(self.fd)

    def truncate(self, size: int) -> None:
        """os.ftruncate of the descriptor."""
        os.ftruncate(self.fd, size)

    def close(self) -> None:
        """os.close of the descriptor."""
        os.close(self.fd)


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a file created or removed in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def header(tags: Iterable[str]) -> str:
    """The header line of a recording of these tags, with its newline."""
    names = list(tags)
    return ",".join(["timestamp", *names, *(QUALITY_PREFIX + t for t in names)]) + "\n"


def iso_utc(ts: float) -> str:
    """A wall-clock time (s) as ISO 8601 UTC with milliseconds: 2025-03-04T05:06:07.250Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def row(ts: float, tags: Iterable[str], latest: dict[str, TagReading]) -> str:
    """One CSV row of the latest readings, with its newline."""
    readings = [latest.get(t, _NOT_READ) for t in tags]
    values = [
        repr(r.value) if r.quality is Quality.GOOD and math.isfinite(r.value) else ""
        for r in readings
    ]
    return ",".join([iso_utc(ts), *values, *(r.quality.value for r in readings)]) + "\n"


def file_prefix(line: str) -> str:
    """The file name prefix of a line's recordings: its name, made safe for a file name."""
    return _UNSAFE.sub("_", line) + "-"


def recordings(directory: Path, line: str) -> list[Path]:
    """The line's recording files in `directory`, oldest first (by the time in their name)."""
    prefix = file_prefix(line)
    found = [p for p in directory.glob(f"{prefix}*.csv") if p.is_file()]
    return sorted(found, key=lambda p: recording_order(p.name))


@dataclass
class FileSummary:
    """One finished recording file: where, how many rows and bytes."""

    path: Path
    rows: int
    size: int


class RecordingWriter:
    """Writes rows to the current file; rotates, bounds the total, fsyncs. Not thread-safe:
    one thread at a time (the recorder hands it to one worker thread after another)."""

    def __init__(
        self,
        settings: RecordConfig,
        line: str,
        tags: Iterable[str],
        opener: FileOpener = OsFile,
        on_closed: Callable[[FileSummary], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.line = line
        self.tags = tuple(tags)
        self.opener = opener
        self.on_closed = on_closed
        self.clock = clock
        self.latest: dict[str, TagReading] = {}
        self.file: RecordingFile | None = None
        self.current: FileSummary | None = None
        self._first_ts = 0.0
        self._last_fsync = 0.0
        self._dirty = False
        self.removed: list[Path] = []  # files deleted for the size bound, oldest first
        self.written_rows = 0
        self.complete_rows = 0  # rows with every tag good (the ones training can use)
        self.written_bytes = 0
        self.files = 0  # files opened

    @property
    def max_bytes(self) -> int:
        """The size bound of all the line's recordings."""
        return int(self.settings.max_mb * MIB)

    @property
    def rotate_bytes(self) -> int:
        """The size at which a file is closed and a new one started."""
        return int(self.settings.rotate_mb * MIB)

    def retag(self, tags: Iterable[str]) -> None:
        """Record another tag set: the next row starts a new file with its header."""
        tags = tuple(tags)
        if tags != self.tags:
            self.close()
            self.tags = tags

    def write(self, samples: Iterable[Sample]) -> int:
        """Append one row per sample; return the rows written. OSError on a failed write."""
        buffer: list[str] = []
        pending = 0
        rows = 0
        for sample in samples:
            self.latest.update(sample.readings)
            text = row(sample.ts, self.tags, self.latest)
            if self.current is not None and self._rotation_due(sample.ts, pending + len(text)):
                self._append_rows(buffer)
                buffer, pending = [], 0
                self.close()
            if self.current is None:
                self._open(sample.ts)
            buffer.append(text)
            pending += len(text)
            rows += 1
        self._append_rows(buffer)
        if self.sync_due:
            self.sync()
        return rows

    def _append_rows(self, rows: list[str]) -> None:
        self._append("".join(rows), len(rows))
        # Quality words follow a comma; values are numbers or empty.
        self.complete_rows += sum(",bad" not in r and ",uncertain" not in r for r in rows)

    @property
    def sync_due(self) -> bool:
        """True when rows written since the last fsync are `fsync_s` old."""
        return self._dirty and self.clock() - self._last_fsync >= self.settings.fsync_s

    def _rotation_due(self, ts: float, pending: int) -> bool:
        assert self.current is not None
        too_big = self.current.size + pending > self.rotate_bytes
        return too_big or abs(ts - self._first_ts) >= self.settings.rotate_s

    def _append(self, text: str, rows: int) -> None:
        if not text:
            return
        assert self.file is not None and self.current is not None
        data = text.encode("utf-8")
        done = 0
        try:
            while done < len(data):
                done += self.file.write(data[done:])
        except OSError:
            self._cut_back()
            raise
        self.current.size += len(data)
        self.current.rows += rows
        self.written_rows += rows
        self.written_bytes += len(data)
        self._dirty = True

    def _cut_back(self) -> None:
        """After a failed write: back to the last whole row (best effort), and close."""
        assert self.file is not None and self.current is not None
        path, size = self.current.path, self.current.size
        # If the disk refuses even that, the reader reports the broken last row.
        with contextlib.suppress(OSError):
            self.file.truncate(size)
        self._abandon()
        if size == 0:  # not even the header went in: leave no empty file behind
            with contextlib.suppress(OSError):
                path.unlink()

    def _abandon(self) -> None:
        """Drop the current file without fsync (its disk failed); the next row opens anew."""
        file, self.file, self.current = self.file, None, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def _open(self, ts: float) -> None:
        directory = self.settings.path
        directory.mkdir(parents=True, exist_ok=True)
        self._bound_total(directory)
        stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")
        base = f"{file_prefix(self.line)}{stamp}"
        path, n = directory / f"{base}.csv", 0
        while path.exists():
            n += 1
            path = directory / f"{base}-{n}.csv"
        self.file = self.opener(path)
        self.current = FileSummary(path, 0, 0)
        self.files += 1
        self._first_ts = ts
        fsync_dir(directory)
        text = header(self.tags)
        self._append(text, 0)
        self._last_fsync = self.clock()

    def _bound_total(self, directory: Path) -> None:
        """Delete the oldest files until they and one full new file fit in max_mb."""
        files = [(p, p.stat().st_size) for p in recordings(directory, self.line)]
        total = sum(size for _, size in files) + self.rotate_bytes
        removed = False
        for path, size in files:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            self.removed.append(path)
            total -= size
            removed = True
        if removed:
            fsync_dir(directory)

    def sync(self) -> None:
        """fsync the current file now."""
        if self.file is not None and self._dirty:
            self.file.fsync()
            self._dirty = False
        self._last_fsync = self.clock()

    def close(self) -> None:
        """fsync and close the current file (the next row opens a new one)."""
        if self.file is None or self.current is None:
            return
        summary = self.current
        try:
            self.sync()
        except OSError:
            self._abandon()
            raise
        self._abandon()
        if self.on_closed is not None:
            self.on_closed(summary)
