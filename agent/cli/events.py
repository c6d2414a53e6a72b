"""`lineside events`: list or export the journal (alarms, acks, explanations, model changes).

The journal is opened read-only, so this is safe while the daemon runs. Times print in UTC
(ISO 8601, `+00:00`), or with `--local` in the machine's time zone with its offset.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.sinks.journal_db import COLUMNS, KINDS, query

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, option: str, now: float | None = None, local: bool = False) -> float:
    """`2h`/`30m`/`7d` ago, an ISO 8601 time or epoch seconds; an ISO time without an offset is
    UTC, or local time with `local`."""
    now = time.time() if now is None else now
    m = _RELATIVE.match(text.strip())
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            option, f"{text!r} is not a time", "use e.g. 2h, 30m, 7d, 2026-12-01T08:00 or epoch s"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone() if local else when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def iso_time(ts: float, local: bool = False) -> str:
    """ISO 8601 with milliseconds and the offset: UTC, or the machine's local time zone."""
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    return (when.astimezone() if local else when).isoformat(timespec="milliseconds")


def render(records: list[dict[str, Any]], fmt: str, local: bool = False) -> str:
    """The records as `table` (for people), `csv` or `json` (one JSON array); times in UTC, or
    local with `local`."""

    def _iso(ts: float) -> str:
        return iso_time(ts, local)

    if fmt == "json":
        return json.dumps([r | {"time": _iso(r["ts"])} for r in records], indent=1) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["time", *COLUMNS])
        for r in records:
            row = [json.dumps(r[c], sort_keys=True) if c == "details" else r[c] for c in COLUMNS]
            writer.writerow([_iso(r["ts"]), *row])
        return out.getvalue()
    lines = [
        f"{_iso(r['ts'])}  {r['line']:<12} {r['kind']:<12} {r['state'] or '-':<8} {r['message']}"
        for r in records
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def journal_path(args: argparse.Namespace) -> Path:
    """The journal file: `--journal`, or the one the site config names."""
    if args.journal:
        return Path(args.journal)
    from agent.config import load_config

    return load_config(Path(args.config)).journal_path


def cmd_events(args: argparse.Namespace) -> int:
    """List or export journal records; exit 2 on a bad option or a missing journal."""
    try:
        path = journal_path(args)
        since = parse_time(args.since, "--since", local=args.local) if args.since else None
        until = parse_time(args.until, "--until", local=args.local) if args.until else None
    except ConfigError as exc:
        print(f"lineside events: {exc}", file=sys.stderr)
        return 2
    try:
        records = query(
            path, since=since, until=until, kinds=args.kind or (), line=args.line, limit=args.limit
        )
    except FileNotFoundError as exc:
        print(f"lineside events: {exc} (fix: pass --journal or --config)", file=sys.stderr)
        return 2
    text = render(records, args.format, local=args.local)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(records)} record(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_parser(sub: Any) -> None:
    """Register `lineside events` on the CLI's subparsers."""
    p = sub.add_parser("events", help="list or export the event journal (CSV/JSON)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--journal", help="journal file (SQLite)")
    where.add_argument("--config", help="site config; its [journal] path is used")
    p.add_argument(
        "--since",
        help="from this time: 2h, 30m, 7d, ISO 8601 (UTC, or local with --local), epoch s",
    )
    p.add_argument("--until", help="before this time (same forms as --since)")
    p.add_argument("--kind", action="append", choices=KINDS, help="only this kind (repeatable)")
    p.add_argument("--line", help="only this line")
    p.add_argument("--limit", type=int, help="only the newest N records")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument(
        "--local",
        action="store_true",
        help="times in this machine's time zone with its offset (default UTC)",
    )
    p.set_defaults(func=cmd_events)
