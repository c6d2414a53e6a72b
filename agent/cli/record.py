"""`lineside record`: poll the site's PLCs and write their values as historian CSVs.

Runs only the PLC sources and the recorder (agent/sinks/recorder.py): no model, no OPC-UA
server, no journal, so it works for a site config without `[model]`. It records until
SIGINT/SIGTERM or `--duration`, prints one line per file it finished and a final count. The
files are what `lineside-export train --data DIR` reads: record a shift, train, install.

Settings are the site's `[record]` table (or its defaults: agent/config/record.py); `--out`
names another directory. Exit status: 0, 2 on a bad config or option, 1 when the recording
ended stopped by a write error (disk full, read-only).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError

if TYPE_CHECKING:  # imported when a command runs, so `lineside --help` stays fast
    from agent.config import SiteConfig
    from agent.config.record import RecordConfig
    from agent.sinks.recorder import Recorder
    from agent.sinks.recording_file import FileSummary
    from agent.types import Event

PROG = "lineside record"


def settings_of(args: argparse.Namespace) -> tuple[SiteConfig, RecordConfig]:
    """(site config, record settings) from the options; ConfigError on a bad one."""
    from agent.config import load_config
    from agent.config.record import DEFAULT_DIR, RecordConfig

    config = load_config(Path(args.config))
    settings = config.record or RecordConfig(path=config.journal_path.parent / DEFAULT_DIR)
    if args.out is not None:
        settings = replace(settings, path=Path(args.out).resolve())
    if settings.path.exists() and not settings.path.is_dir():
        raise ConfigError("--out", f"{settings.path} exists and is not a directory", "name a dir")
    if args.duration is not None and not args.duration > 0:
        raise ConfigError("--duration", f"must be more than 0 s, got {args.duration:g}", "e.g. 60")
    return config, settings


def _print_file(summary: FileSummary) -> None:
    print(f"wrote {summary.path}: {summary.rows} rows, {summary.size} bytes", flush=True)


def _print_event(event: Event) -> None:
    print(f"{PROG}: {event.message}", file=sys.stderr, flush=True)


async def record(config: SiteConfig, settings: RecordConfig, duration: float | None) -> Recorder:
    """Record the site's PLCs until a signal or `duration` seconds, each line in its own
    files; return the (first line's) recorder."""
    recorders = [await _line_recorder(view, settings, duration) for view in config.line_views()]
    await _record_lines(recorders, duration)
    return recorders[0][0]


async def _line_recorder(
    view: SiteConfig, settings: RecordConfig, duration: float | None
) -> tuple[Recorder, list[Any]]:
    """One line's recorder and the sources of its PLCs."""
    from agent.sinks.recorder import Recorder, recorded_tags
    from agent.sources import make_source

    tags = recorded_tags(view)
    if not tags:
        raise ConfigError("plc", f"line {view.line} has no numeric tag to record", "map one")
    recorder = Recorder(settings, view.line, tags, on_event=_print_event, on_closed=_print_file)
    sources = [make_source(plc) for plc in view.plcs]
    print(
        f"recording {len(tags)} tags of line {view.line} from {len(sources)} PLC connection(s) "
        f"to {settings.path}" + (f" for {duration:g} s" if duration else " (Ctrl-C stops)"),
        file=sys.stderr,
        flush=True,
    )
    return recorder, sources


async def _record_lines(lines: list[tuple[Recorder, list[Any]]], duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(s.run(recorder.offer), name=f"plc:{s.name}")
                for recorder, sources in lines
                for s in sources
            ]
            tasks += [tg.create_task(r.run(), name=f"recorder:{r.line}") for r, _ in lines]
            try:
                async with asyncio.timeout(duration):
                    await stop.wait()
            except TimeoutError:
                pass
            for task in tasks:
                task.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for recorder, _ in lines:
            await recorder.aclose()


def cmd_record(args: argparse.Namespace) -> int:
    """Record until a signal or --duration; exit 2 on a bad config, 1 if writing failed."""
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("pymodbus", "asyncua"):  # their problems reach us as bad-quality readings
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        config, settings = settings_of(args)
        recorder = asyncio.run(record(config, settings, args.duration))
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    stats = recorder.stats
    print(
        f"recorded {stats.rows} rows ({recorder.writer.complete_rows} with every tag good) "
        f"in {stats.files} file(s) to {settings.path}; {stats.drops} dropped, "
        f"{stats.missed} not recorded, {stats.errors} write errors",
        flush=True,
    )
    return 1 if recorder.stopped or recorder.raised is not None else 0


def add_parser(sub: Any) -> None:
    """Register `lineside record` on the CLI's subparsers."""
    p = sub.add_parser(
        "record",
        help="poll the PLCs and record their values as historian CSVs (for lineside-export)",
    )
    p.add_argument("--config", required=True, help="site config (TOML); [model] not needed")
    p.add_argument("--out", help="directory of the recordings (default: [record] path)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_record)
