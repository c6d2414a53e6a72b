"""`[record]`: the historian CSV recording of the polled values (`agent.sinks.recorder`).

    path        directory of the recordings (default: `recordings` beside the journal);
                relative to the config file
    max_mb      the recordings of the line together stay under this (default 1024); the
                oldest files are deleted first
    rotate_mb   a new file once the current one holds this much (default 64)
    rotate_s    a new file once the current one spans this many seconds (default 3600)
    fsync_s     the current file is fsynced at least this often (default 1.0)

Why these defaults: 1 GiB is weeks of a small line (20 tags at 1 Hz write 300 to 500 bytes a
row, a float64 taking up to 17 digits: 25 to 45 MB a day) and a small share of an industrial
PC's disk. Hourly files of at most 64 MiB open in a spreadsheet, and a shift is eight of them,
which `lineside-export train --data DIR` reads in time order. An fsync a second costs one disk
flush a second and loses at most a second of rows to a power cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from agent.config.reader import Section

MAX_MB = 1024.0
ROTATE_MB = 64.0
ROTATE_S = 3600.0
FSYNC_S = 1.0
DEFAULT_DIR = "recordings"
KEYS = {"path", "max_mb", "rotate_mb", "rotate_s", "fsync_s"}


@dataclass(frozen=True)
class RecordConfig:
    """Where and how the polled values are recorded as historian CSVs."""

    path: Path
    max_mb: float = MAX_MB
    rotate_mb: float = ROTATE_MB
    rotate_s: float = ROTATE_S
    fsync_s: float = FSYNC_S


def _number(section: Section, key: str, default: float, example: str) -> float:
    value = section.get(key, float, default, fix=example)
    if not (math.isfinite(value) and value > 0):
        raise section.error(key, f"must be a number greater than 0, got {value!r}", example)
    return value


def load_record(section: Section, base: Path, state_dir: Path) -> RecordConfig:
    """The `[record]` table, checked; `state_dir` (the journal's) holds the default path."""
    section.reject_unknown(KEYS)
    path = section.path_value("path", base) if section.has("path") else state_dir / DEFAULT_DIR
    config = RecordConfig(
        path=path,
        max_mb=_number(section, "max_mb", MAX_MB, f"e.g. max_mb = {MAX_MB:g}"),
        rotate_mb=_number(section, "rotate_mb", ROTATE_MB, f"e.g. rotate_mb = {ROTATE_MB:g}"),
        rotate_s=_number(section, "rotate_s", ROTATE_S, f"e.g. rotate_s = {ROTATE_S:g}"),
        fsync_s=_number(section, "fsync_s", FSYNC_S, f"e.g. fsync_s = {FSYNC_S:g}"),
    )
    if config.rotate_mb > config.max_mb:
        raise section.error(
            "rotate_mb",
            f"{config.rotate_mb:g} MB is more than max_mb {config.max_mb:g} MB",
            "a file must fit in the total: lower rotate_mb or raise max_mb",
        )
    if path.exists() and not path.is_dir():
        raise section.error("path", f"{path} exists and is not a directory", "name a directory")
    return config
