"""Helpers for recorder tests: samples, settings, and a disk that fills up on demand."""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path

from agent.config.record import RecordConfig
from agent.sinks.recording_file import OsFile, RecordingFile
from agent.types import Quality, Sample, TagReading

T0 = 1_741_064_767.25  # 2025-03-04T05:06:07.250Z


def sample(ts: float, source: str = "plc", **values: float | Quality) -> Sample:
    """A sample of `source`; a value given as a Quality is that quality with no value."""
    readings = {
        tag: TagReading(math.nan, v, "read failed")
        if isinstance(v, Quality)
        else TagReading(float(v))
        for tag, v in values.items()
    }
    return Sample(ts, source, readings)


def settings(path: Path, **kw: float) -> RecordConfig:
    """Record settings into `path`; sizes in MiB, times in s."""
    return RecordConfig(path=path, **kw)


class FillingDisk:
    """A `FileOpener` whose files refuse writes with ENOSPC while `full` is set (a disk that
    fills up and is freed again), else write to real files; counts fsyncs."""

    def __init__(self, space: int | None = None) -> None:
        self.full = False
        self.space = space  # bytes a file takes before it fills the disk (None: unbounded)
        self.fsyncs = 0
        self.opened: list[Path] = []

    def __call__(self, path: Path) -> RecordingFile:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        self.opened.append(path)
        return _FillingFile(self, path)


class _FillingFile(OsFile):
    def __init__(self, disk: FillingDisk, path: Path) -> None:
        super().__init__(path)
        self.disk, self.path, self.size = disk, path, 0

    def write(self, data: bytes) -> int:
        if self.disk.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        if self.disk.space is not None and self.size + len(data) > self.disk.space:
            room = self.disk.space - self.size
            self.disk.full = True
            if room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
            data = data[:room]  # a short write, as a filling disk does; the next one fails
        written = super().write(data)
        self.size += written
        return written

    def fsync(self) -> None:
        self.disk.fsyncs += 1
        super().fsync()

    def truncate(self, size: int) -> None:
        super().truncate(size)
        self.size = size
