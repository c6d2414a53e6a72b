"""The live detector state survives an agent restart: a per-line snapshot in the state directory.

What a snapshot holds (one JSON file, `detector-state.<line>.json` beside the journal):
`LineMonitor.state()` (the window, the SPC chart, the rule and anomaly alarms, the fusion, the
shift detector with its frozen baseline) plus who it belongs to: the line, the bundle's model
version and label, the channel list, a fingerprint of the detector parameters (SPC limits,
shift parameters, window, hop, fusion mode) and the wall-clock time it was taken.

Writing: on every alarm edge, every `[detection] state_interval_s` and once more at a clean
stop, the timer's only when the loop has processed a sample since the last one (an idle line
keeps its snapshot's age). The event loop only takes the dict, in its own task
(`LineMonitor.state()`, between two samples, so never half a sample); encoding, fsync and the
atomic rename (temp file, fsync, rename, fsync of the directory) run in one worker thread. While
a write is still running, the next one is skipped and counted: the loop never waits on the disk.
A failed write is counted and logged once until one succeeds.

Restoring, at start only, and only when every check passes: same line, same model version,
same channels, same detector fingerprint, and younger than `state_max_age_s`. Otherwise the
agent starts fresh and logs one line saying why. A snapshot that cannot be parsed is moved
aside (`<name>.<utc time>.corrupt`, so nothing is lost) and the agent starts fresh.

The raise edge of each alarm still open is saved too. At start the agent settles the journal's
open alarms against the restored detectors (agent.runtime.alarm_restart): an alarm both hold
is adopted, and SCADA's condition is active again under its original EventId (the journal's
event_id), so an acknowledgement still names the journaled alarm; any other is closed.

A model hot swap (agent/runtime/hotswap.py) rebuilds the detectors in the running agent: later
snapshots carry the new version and fingerprint, so a snapshot of one model is never restored
into another, even one written in the instant of a swap or a rollback.

Counters (`SnapshotStats`, registered as `snapshots` with the agent's counter registry) are
published in the OPC-UA `Agent/` object: SnapshotsWritten, SnapshotsSkipped, SnapshotsFailed,
SnapshotsRestored, SnapshotsRefused and SnapshotRefusedReason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.ops.counters import CounterRegistry
from agent.pipeline.line import LineMonitor, LineResult
from agent.runtime.snapshot_file import (
    dict_of,
    event_of,
    fingerprint,
    write_atomically,
)
from agent.types import Event, EventKind, EventState

log = logging.getLogger(__name__)
SNAPSHOT_FORMAT = 1
EDGE_RETRY_S = 0.05  # an edge's snapshot waits this long for a running write, and again
# A snapshot this far in the future means the clock was set back since: its age is unknown.
CLOCK_SLACK_S = 60.0
# The final write at a stop must leave the journal its share of the drain on a hung disk.
FINAL_WRITE_TIMEOUT_S = 3.0
_IDENTITY = ("line", "model_version", "label", "channels", "fingerprint", "written_at")


@dataclass
class SnapshotStats:
    """What the snapshots did since start."""

    written: int = 0
    skipped: int = 0  # a write was still running when the next one was due
    failed: int = 0
    restored: int = 0
    refused: int = 0
    refusal: str = ""  # why the last snapshot was not restored ("" when none was refused)
    last_error: str = ""


@dataclass
class Owner:
    """Who a snapshot belongs to: the line, its running model, its channels and detectors."""

    line: str
    model_version: int
    label: str
    channels: list[str]


class DetectorSnapshots:
    """Restores a line's detector state at start, then saves it off the hot loop."""

    def __init__(
        self,
        path: Path,
        interval_s: float,
        max_age_s: float,
        registry: CounterRegistry | None = None,
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self.stats = SnapshotStats()
        if registry is not None:
            registry.register_part("snapshots", self.stats)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshots")
        self._writing: Future[None] | None = None
        self._failing = False
        self._progress = 0  # samples processed when the last snapshot was taken
        # The raise edge of each alarm kind still active: saved with the state, and after a
        # restore told to SCADA again, so its alarm condition is active with its own EventId.
        self.open_alarms: dict[EventKind, Event] = {}
        self.reopened: list[Event] = []
        self._edge = asyncio.Event()  # an alarm edge since the last snapshot: write one now

    # --- at start --------------------------------------------------------------------------

    def restore(self, monitor: LineMonitor, owner: Owner, now: float | None = None) -> bool:
        """Restore `monitor` from the snapshot if it is safe; True if it was restored."""
        try:
            snapshot = json.loads(self.path.read_bytes())
            if not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT:
                raise ValueError(f"not a format-{SNAPSHOT_FORMAT} detector snapshot")
            missing = [k for k in (*_IDENTITY, "state") if k not in snapshot]
            if missing:
                raise ValueError(f"it has no {', '.join(missing)}")
            written_at = float(snapshot["written_at"])
        except FileNotFoundError:
            log.info("no detector state snapshot at %s: starting fresh", self.path)
            return False
        except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeError are ValueErrors
            self._move_aside(f"{exc}")
            return False
        except OSError as exc:
            return self._refuse("unreadable", f"cannot read it: {exc}")
        age = (time.time() if now is None else now) - written_at
        reason = self._mismatch(snapshot, monitor, owner, age)
        if reason is not None:
            return self._refuse(*reason)
        fresh = monitor.state()
        try:
            reopened = [event_of(e) for e in snapshot.get("open_alarms", [])]
            monitor.restore(snapshot["state"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            monitor.restore(fresh)
            return self._refuse("does-not-fit", f"its state does not fit this monitor: {exc!r}")
        self.reopened = reopened
        self.open_alarms = {e.kind: e for e in reopened}
        self.stats.restored += 1
        log.warning(
            "detector state restored from %s (%.0f s old): shift %s, anomaly alarm %s",
            self.path,
            age,
            "active" if monitor.shift_active else "inactive",
            "active" if monitor.alarms["vae"].active else "inactive",
            extra={"SNAPSHOT": "restored", "SNAPSHOT_AGE_S": f"{age:.0f}"},
        )
        return True

    def _mismatch(
        self, snapshot: dict[str, Any], monitor: LineMonitor, owner: Owner, age: float
    ) -> tuple[str, str] | None:
        """(reason, text) of the first check that fails, or None when restoring is safe."""
        if self.max_age_s <= 0:
            return "restore-off", "[detection] state_max_age_s = 0"
        if snapshot["line"] != owner.line:
            return "other-line", f"it is of line {snapshot['line']!r}, this is {owner.line!r}"
        if snapshot["model_version"] != owner.model_version:
            return "other-model", (
                f"it is of model {snapshot['model_version']} ({snapshot['label']}), "
                f"the running model is {owner.model_version} ({owner.label})"
            )
        if snapshot["channels"] != owner.channels:
            return "other-channels", "it lists other channels than the running model"
        if snapshot["fingerprint"] != fingerprint(monitor):
            return "other-detectors", "its detector parameters differ from the running ones"
        if age > self.max_age_s:
            return "too-old", f"it is {age:.0f} s old, over state_max_age_s = {self.max_age_s:g}"
        if age < -CLOCK_SLACK_S:
            return "clock-changed", f"it is dated {-age:.0f} s in the future: the clock moved"
        return None

    def _refuse(self, reason: str, text: str) -> bool:
        self.stats.refused += 1
        self.stats.refusal = reason
        log.warning(
            "detector state snapshot %s not restored (%s): %s; starting fresh",
            self.path,
            reason,
            text,
            extra={"SNAPSHOT": "refused", "SNAPSHOT_REASON": reason},
        )
        return False

    def _move_aside(self, problem: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.{stamp}.corrupt")
        try:
            os.replace(self.path, aside)
            where = f"moved to {aside.name}"
        except OSError as exc:
            where = f"and cannot be moved aside: {exc}"
        self._refuse("corrupt", f"it cannot be parsed ({problem}), {where}")

    # --- while running -----------------------------------------------------------------------

    def observe(self, result: LineResult) -> None:
        """A listener of the loop's results: keep the raise edge of each open alarm."""
        for event in result.events:
            if event.state is EventState.RAISED:
                self.open_alarms[event.kind] = event
            else:
                self.open_alarms.pop(event.kind, None)
            self._edge.set()

    @staticmethod
    def take(
        monitor: LineMonitor, owner: Owner, open_alarms: Iterable[Event] = ()
    ) -> dict[str, Any]:
        """The snapshot as a dict: cheap, on the loop, between two samples."""
        return {
            "format": SNAPSHOT_FORMAT,
            "line": owner.line,
            "model_version": owner.model_version,
            "label": owner.label,
            "channels": list(monitor.channels),
            "fingerprint": fingerprint(monitor),
            "written_at": time.time(),
            "state": monitor.state(),
            "open_alarms": [dict_of(e) for e in open_alarms],
        }

    def offer(self, snapshot: dict[str, Any]) -> bool:
        """Hand a snapshot to the writer thread; False (counted) if a write is still running."""
        if self._writing is not None and not self._writing.done():
            self.stats.skipped += 1
            return False
        self._writing = self._executor.submit(self._write, snapshot)
        return True

    def _write(self, snapshot: dict[str, Any]) -> None:
        try:
            write_atomically(self.path, snapshot)
        except (OSError, ValueError) as exc:
            self.stats.failed += 1
            self.stats.last_error = str(exc)
            if not self._failing:
                log.error("detector state snapshot %s not written: %s", self.path, exc)
            self._failing = True
        else:
            self.stats.written += 1
            if self._failing:
                log.info("detector state snapshot %s written again", self.path)
            self._failing = False

    async def run(self, take: Callable[[], dict[str, Any]], progress: Callable[[], int]) -> None:
        """Every `interval_s`, offer `take()` if the loop has processed a sample since the last
        one (`progress()` counts them): an idle line rewrites nothing and keeps its age. An
        alarm edge is written at once, so a kill -9 loses at most the edges of one write."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._edge.wait()
            edge = self._edge.is_set()
            self._edge.clear()
            due = self._moved(progress()) or edge
            if due and not self.offer(take()) and edge:
                self._edge.set()  # a write was running: the edge's snapshot follows it
                await asyncio.sleep(EDGE_RETRY_S)

    def _moved(self, progress: int) -> bool:
        moved, self._progress = progress != self._progress, progress
        return moved

    async def aclose(self, take: Callable[[], dict[str, Any]], progress: Callable[[], int]) -> None:
        """At a clean stop: wait for a running write, write the last state, stop the thread."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(FINAL_WRITE_TIMEOUT_S):
                if self._writing is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wrap_future(self._writing)
                if self._moved(progress()):
                    await loop.run_in_executor(self._executor, self._write, take())
        except TimeoutError:
            log.error("detector state not written at stop within %g s", FINAL_WRITE_TIMEOUT_S)
        self._executor.shutdown(wait=False)
