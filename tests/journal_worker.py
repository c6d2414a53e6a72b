"""A process that drives the real Journal like the detection loop does, for crash tests.

    python -m tests.journal_worker DB COMMITTED_LOG [--rate N] [--fsize BYTES]

A "hot loop" ticks every 1 ms and sends events (`--rate` per tick) without ever waiting on the
journal; each commit appends the committed event ids to COMMITTED_LOG (after the commit, so
every id in the file must be in the database). Every 100 ms one JSON line of stats goes to
stdout: loop ticks, the longest gap between ticks, and the journal's counters. SIGTERM drains
like the agent: the journal is closed (flushed), then a final `{"exit": ...}` line is printed.
`--fsize` caps the size of any file this process writes (RLIMIT_FSIZE), a real "disk full".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from agent.sinks.journal import Journal
from agent.types import Event, EventKind, EventState


def make_event(i: int) -> Event:
    return Event(
        ts=time.time(), line="l1", kind=EventKind.ANOMALY, state=EventState.RAISED,
        detector="vae", severity=700, message=f"burst {i}", tag="melt_pressure",
        score=2.0, threshold=1.0, details={"i": i},
    )  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    log = Path(args.committed).open("a", buffering=1)  # noqa: SIM115 - closed at exit

    def committed(ids: list[str]) -> None:
        log.write("".join(f"{i}\n" for i in ids))

    journal = Journal(
        Path(args.db), retry_interval_s=0.2, on_commit=committed,
        max_queue=args.max_queue, max_pending=args.max_queue,
    )  # fmt: skip
    await journal.open()
    writer = asyncio.create_task(journal.run())
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    ticks, sent, accepted, max_gap = 0, 0, 0, 0.0
    last = last_report = time.monotonic()
    try:
        while True:
            for _ in range(args.rate):
                accepted += journal.send(make_event(sent))
                sent += 1
            ticks += 1
            await asyncio.sleep(0.001)
            now = time.monotonic()
            max_gap = max(max_gap, now - last)
            last = now
            if now - last_report >= 0.1:
                last_report = now
                stats = {"ticks": ticks, "sent": sent, "accepted": accepted, "max_gap": max_gap}
                print(json.dumps(stats | asdict(journal.stats)), flush=True)
    except asyncio.CancelledError:
        pass
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    await journal.aclose()
    log.close()
    print(json.dumps({"exit": True, "accepted": accepted} | asdict(journal.stats)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("committed")
    parser.add_argument("--rate", type=int, default=5)
    parser.add_argument("--fsize", type=int, default=0)
    parser.add_argument("--max-queue", type=int, default=10_000)
    args = parser.parse_args()
    if args.fsize:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    asyncio.run(main(args))
    sys.stdout.flush()
    os._exit(0)
