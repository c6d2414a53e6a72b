"""The snapshot file: where it lives, how it is encoded and written, and whose it is.

Pure helpers of `agent.runtime.snapshots` (no asyncio): the path, the detector fingerprint, the
JSON encoding one component at a time, the atomic write, and alarm edges as JSON data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from agent.bundles.store import write_atomic
from agent.pipeline.line import LineMonitor
from agent.types import Event, EventKind, EventState


def snapshot_path(state_dir: Path, line: str) -> Path:
    """Where the snapshot of `line` lives: `detector-state.<line>.json` in the state directory."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", line)
    return state_dir / f"detector-state.{safe}.json"


def fingerprint(monitor: LineMonitor) -> str:
    """A digest of what the saved state is only valid for: limits, shift parameters, shape."""
    key = (monitor.spc, monitor.shift, monitor.fusion.mode, monitor.bundle_vae.window)
    cached = _last_fingerprint[0]
    if cached is not None and all(a is b for a, b in zip(cached[0], key, strict=True)):
        return cached[1]  # the same detector objects: their parameters never change in place
    digest = _digest(monitor)
    _last_fingerprint[0] = (key, digest)
    return digest


# The agent runs one monitor: one entry, recomputed when a hot swap brings new detectors.
_last_fingerprint: list[tuple[tuple[object, ...], str] | None] = [None]


def _digest(monitor: LineMonitor) -> str:
    limits = monitor.spc.chart.limits
    raw = {
        "spc": [limits.center.tolist(), limits.sigma.tolist(), limits.mr_bar.tolist()],
        "nsigmas": limits.nsigmas,
        "flatline": monitor.spc.chart.flatline_samples,
        "shift": monitor.shift.params.to_dict() if monitor.shift is not None else None,
        "window": [monitor.bundle_vae.window.size, monitor.bundle_vae.window.hop],
        "fusion": monitor.fusion.mode,
    }
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


# The longest the writer encodes before it gives the GIL up once.
YIELD_AFTER_S = 0.0005


def encode(snapshot: dict[str, Any]) -> bytes:
    """The snapshot as JSON, encoded a piece at a time; the same text as `json.dumps`.

    One `json.dumps` of the whole dict is one C call that holds the GIL throughout (tens of
    ms at 1,024 channels), and the event loop would wait for all of it. Here every value of
    a dict of up to 32 keys, three levels deep, is its own piece (at most about a millisecond
    at 1,024 channels), and after every `YIELD_AFTER_S` of encoding the writer gives the GIL
    up (`sleep(0)`), so a waiting loop thread takes it then rather than after the
    interpreter's 5 ms switch interval."""
    return _Pieces().encode(snapshot, 3).encode()


class _Pieces:
    def __init__(self) -> None:
        self.since = time.perf_counter()

    def encode(self, value: Any, depth: int) -> str:
        if depth > 0 and isinstance(value, dict) and len(value) <= 32:
            pieces = (f"{json.dumps(k)}:{self.encode(v, depth - 1)}" for k, v in value.items())
            return "{" + ",".join(pieces) + "}"
        text = json.dumps(value, separators=(",", ":"))
        if time.perf_counter() - self.since > YIELD_AFTER_S:
            time.sleep(0)  # gives the GIL up for the ~50 µs timer slack: a waiter takes it
            self.since = time.perf_counter()
        return text


def write_atomically(path: Path, snapshot: dict[str, Any]) -> None:
    """Encode and replace `path` so a reader sees the old file or the new one, never half."""
    write_atomic(path, encode(snapshot), mode=0o640)


def dict_of(event: Event) -> dict[str, Any]:
    """An alarm edge as JSON-able data."""
    raw = dataclasses.asdict(event)
    raw["kind"], raw["state"] = event.kind.value, event.state.value
    return raw


def event_of(raw: dict[str, Any]) -> Event:
    """Inverse of `dict_of`; KeyError, TypeError or ValueError if it is not one."""
    return Event(**{**raw, "kind": EventKind(raw["kind"]), "state": EventState(raw["state"])})
