"""`lineside health`: exit 0 if the running agent's detection loop made progress lately."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.ops.systemd import DEFAULT_FILE, check


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
