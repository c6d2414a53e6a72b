"""`lineside health`: exit 0 if the running agent's detection loop made progress lately.

Exit codes (agent.ops.systemd.HEALTH_CODES): 0 alive and writing; 1 not running or stalled;
3 alive but its state directory cannot be written. `--alive-only` exits 0 for the last too,
for a supervisor that restarts on failure (a restart does not free a disk).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.ops.systemd import (
    DEFAULT_STATE_DIR,
    HEALTH_CANNOT_WRITE,
    HEALTH_CODES,
    HEALTH_OK,
    health,
    heartbeat_files,
)


def heartbeat_file(args: argparse.Namespace) -> Path:
    """The `--file` given, else the first heartbeat that exists where the agent writes one."""
    if args.file:
        return Path(args.file)
    files = heartbeat_files(Path(args.state_dir))
    return next((f for f in files if f.exists()), files[0])


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 if the agent's loop made progress within --max-age seconds (codes: see above)."""
    code, reason = health(heartbeat_file(args), args.max_age)
    if code == HEALTH_CANNOT_WRITE and args.alive_only:
        code = HEALTH_OK
    print(reason, file=sys.stdout if code == HEALTH_OK else sys.stderr)
    return code


def add_parser(sub: Any) -> None:
    """Register `lineside health` on the CLI's subparsers."""
    codes = "; ".join(f"{code}: {text}" for code, text in HEALTH_CODES.items())
    p = sub.add_parser(
        "health",
        help="exit 0 if the running agent's detection loop is alive",
        description=f"Exit codes: {codes}.",
    )
    p.add_argument(
        "--file",
        default="",
        help="heartbeat file of the agent (default: the runtime directory's, "
        "$LINESIDE_RUNTIME_DIR or /run/lineside, else the state directory's)",
    )
    p.add_argument(
        "--state-dir", default=str(DEFAULT_STATE_DIR), help="the agent's state directory"
    )
    p.add_argument("--max-age", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument(
        "--alive-only",
        action="store_true",
        help="exit 0 while the loop is alive even if it cannot write (no restart loop)",
    )
    p.set_defaults(func=cmd_health)
