"""A heartbeat file for supervisors without sd_notify (Docker HEALTHCHECK), and `lineside health`.

The detection loop only records the time of its last iteration (`beat`, no I/O); a separate
task rewrites the file from that, so the disk never sits on the hot path, and the file goes
stale as soon as the loop stops making progress, exactly like systemd's watchdog.

The file holds one JSON object: the wall-clock time of the last loop iteration, the journal's
health and the pid. `lineside health` exits 0 if it is fresh, 1 otherwise, saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path("/var/lib/lineside/heartbeat.json")


class Heartbeat:
    """`beat()` from the loop; `run()` as a task writes the file every `interval_s`."""

    def __init__(
        self, path: Path, interval_s: float = 5.0, extra: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.extra = extra
        self.last_progress = 0.0
        self.write_errors = 0

    def beat(self) -> None:
        """The loop made progress (no I/O)."""
        self.last_progress = time.time()

    def write(self) -> None:
        """Replace the file atomically with the current state."""
        state = {"loop_ts": self.last_progress, "pid": os.getpid(), **(self.extra or dict)()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.path)

    async def run(self) -> None:
        """Write the heartbeat until cancelled; a failing disk only counts errors."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.write)
            except OSError:
                self.write_errors += 1
            await asyncio.sleep(self.interval_s)

    def remove(self) -> None:
        """Remove the file at a clean exit, so a stopped agent never looks healthy."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def check(path: Path, max_age_s: float, now: float | None = None) -> tuple[bool, str]:
    """Whether the heartbeat at `path` is fresh, and a one-line reason."""
    now = time.time() if now is None else now
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False, f"no heartbeat at {path}: the agent is not running or not started yet"
    except (OSError, ValueError) as exc:
        return False, f"heartbeat {path} unreadable: {exc}"
    age = now - float(state.get("loop_ts", 0.0))
    if age > max_age_s:
        return False, f"detection loop stalled: last progress {age:.0f} s ago"
    journal = "journal ok" if state.get("journal_ok", True) else "journal NOT writing"
    return True, f"ok: last progress {age:.1f} s ago, {journal}"


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 if the agent's loop made progress within --max-age seconds."""
    ok, reason = check(Path(args.file), args.max_age)
    print(reason, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def add_parser(sub: Any) -> None:
    """Register `lineside health` on the CLI's subparsers."""
    p = sub.add_parser("health", help="exit 0 if the running agent's detection loop is alive")
    p.add_argument("--file", default=str(DEFAULT_FILE), help="heartbeat file of the agent")
    p.add_argument("--max-age", type=float, default=30.0, help="seconds (default 30)")
    p.set_defaults(func=cmd_health)
