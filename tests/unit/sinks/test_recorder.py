"""The recorder service: offer never blocks and drops the oldest, writes go through a worker
thread, a full disk raises and clears the `recording` alarm, aclose flushes, counters."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from agent.config import load_config
from agent.core.tabular import read_csv
from agent.ops.counters import CounterRegistry
from agent.sinks import recorder as recorder_module
from agent.sinks.recorder import QUEUE_SIZE, Recorder, describe, recorded_tags
from agent.sinks.recording_file import recordings
from agent.sinks.scada.limits import AgentCounters
from agent.types import Event, EventKind, EventState
from tests.config_helpers import write_site
from tests.recording_helpers import T0, FillingDisk, sample, settings

TAGS = ("speed", "temp")


def rows_in(directory: Path) -> list[float]:
    return [v for f in recordings(directory, "l") for v in read_csv(f).column("speed").tolist()]


async def test_offer_queues_and_aclose_writes_it_all(tmp_path: Path) -> None:
    registry = CounterRegistry()
    recorder = Recorder(settings(tmp_path), "l", TAGS, registry=registry)
    for i in range(100):
        recorder.offer(sample(T0 + i, speed=i, temp=1.0))
    assert recordings(tmp_path, "l") == []  # offer itself writes nothing
    await recorder.aclose()
    assert rows_in(tmp_path) == [float(i) for i in range(100)]
    counters = AgentCounters(registry)
    assert counters.recorded_rows == 100 and counters.recording_state == "writing"
    assert counters.recorded_bytes == recordings(tmp_path, "l")[0].stat().st_size
    assert counters.recording_drops == 0 and counters.recording_errors == 0


async def test_run_writes_in_a_worker_thread_while_the_loop_goes_on(tmp_path: Path) -> None:
    threads: list[str] = []
    disk = FillingDisk()

    def opener(path: Path) -> object:
        threads.append(threading.current_thread().name)
        return disk(path)

    recorder = Recorder(settings(tmp_path, fsync_s=0.05), "l", TAGS, opener=opener)  # type: ignore[arg-type]
    task = asyncio.create_task(recorder.run())
    for i in range(20):
        recorder.offer(sample(T0 + i, speed=i))
        await asyncio.sleep(0.01)
    while recorder.stats.rows < 20:
        await asyncio.sleep(0.02)
    while disk.fsyncs == 0:  # rows in the file are fsynced within fsync_s, no close needed
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await recorder.aclose()
    assert threads and threading.main_thread().name not in threads
    assert rows_in(tmp_path) == [float(i) for i in range(20)]
    assert recorder.stats.writer_cpu_s > 0.0


async def test_a_full_queue_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    recorder = Recorder(settings(tmp_path), "l", TAGS)
    for i in range(QUEUE_SIZE + 10):
        recorder.offer(sample(T0 + i, speed=i))
    assert recorder.stats.drops == 10
    await recorder.aclose()
    written = rows_in(tmp_path)
    assert written[0] == 10.0 and len(written) == QUEUE_SIZE  # the newest are kept


async def test_a_full_disk_raises_the_alarm_then_clears_it_when_freed(tmp_path: Path) -> None:
    events: list[Event] = []
    disk = FillingDisk()
    recorder = Recorder(
        settings(tmp_path), "l", TAGS, on_event=events.append, opener=disk, retry_s=0.0
    )
    recorder.offer(sample(T0, speed=0.0))
    await recorder.write_queued()
    disk.full = True
    recorder.offer(sample(T0 + 1, speed=1.0))
    await recorder.write_queued()
    (raised,) = events
    assert (raised.kind, raised.state, raised.detector) == (
        EventKind.RECORDING, EventState.RAISED, "recorder",
    )  # fmt: skip
    assert "ENOSPC (No space left on device)" in raised.message
    assert "detection goes on" in raised.message and raised.details["errno"] == "ENOSPC"
    assert recorder.stopped and recorder.stats.state.startswith("stopped: ENOSPC")
    for i in range(2, 4):  # still full: retried, no second alarm edge
        recorder.offer(sample(T0 + i, speed=float(i)))
        await recorder.write_queued()
    assert len(events) == 1 and recorder.stats.errors == 3 and recorder.stats.missed == 3
    disk.full = False
    recorder.offer(sample(T0 + 4, speed=4.0))
    await recorder.write_queued()
    assert [e.state for e in events] == [EventState.RAISED, EventState.CLEARED]
    assert events[1].details["raised"] == raised.event_id
    assert "recording resumed: writing" in events[1].message
    assert not recorder.stopped and recorder.stats.state == "writing"
    await recorder.aclose()
    assert rows_in(tmp_path) == [0.0, 4.0]  # two files, whole rows only
    assert len(recordings(tmp_path, "l")) == 2


async def test_while_stopped_the_samples_are_discarded_until_the_retry(tmp_path: Path) -> None:
    events: list[Event] = []
    disk = FillingDisk()
    disk.full = True
    recorder = Recorder(settings(tmp_path), "l", TAGS, on_event=events.append, opener=disk)
    recorder.offer(sample(T0, speed=0.0))
    await recorder.write_queued()
    assert recorder.stopped and len(disk.opened) == 0
    disk.full = False
    recorder.offer(sample(T0 + 1, speed=1.0))
    await recorder.write_queued()  # within RETRY_S: not tried, counted
    assert recorder.stats.missed == 2 and recordings(tmp_path, "l") == []
    recorder.offer(sample(T0 + 2, speed=2.0))
    await recorder.aclose()  # the last chance is always tried, and clears the alarm
    assert rows_in(tmp_path) == [2.0]
    assert [e.state for e in events] == [EventState.RAISED, EventState.CLEARED]


async def test_a_read_only_directory_is_an_alarm_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    events: list[Event] = []
    recorder = Recorder(settings(blocker / "rec"), "l", TAGS, on_event=events.append)
    recorder.offer(sample(T0, speed=0.0))
    await recorder.write_queued()
    assert events[0].state is EventState.RAISED
    assert "ENOTDIR" in events[0].message and str(blocker) in events[0].message


async def test_retag_starts_a_new_file(tmp_path: Path) -> None:
    recorder = Recorder(settings(tmp_path), "l", ["speed"])
    recorder.offer(sample(T0, speed=1.0, temp=5.0))
    await recorder.write_queued()
    recorder.retag(["speed", "temp"])
    recorder.offer(sample(T0 + 1, speed=2.0, temp=6.0))
    await recorder.aclose()
    first, second = recordings(tmp_path, "l")
    assert read_csv(first).columns == ["speed"]
    assert read_csv(second).values.tolist() == [[2.0, 6.0]]


def test_describe_names_the_errno_and_the_file() -> None:
    exc = OSError(30, "Read-only file system", "/data/rec.csv")
    assert describe(exc) == "EROFS (Read-only file system): /data/rec.csv"
    assert recorder_module.SEVERITY < 500  # below the process alarms


def test_recorded_tags_leave_out_text_tags(tmp_path: Path) -> None:
    text_tag = '\n[[tag]]\nname = "recipe"\naddress = 40\ntype = "string"\nlength = 8\n'
    from tests.config_helpers import TAG_MAP

    config = load_config(write_site(tmp_path, tag_map=TAG_MAP.read_text() + text_tag))
    tags = recorded_tags(config)
    assert "recipe" in config.tags and "recipe" not in tags
    assert tags == [t for t in config.tags if t != "recipe"]
