"""Detector state snapshots: a round trip through the file gives the same line, refusals start
fresh and say why, a corrupt file is moved aside, the writer skips while busy, config checks."""

from __future__ import annotations

import asyncio
import doctest
import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agent.bundles.bundle import Bundle, load_bundle
from agent.bundles.store import temp_path
from agent.config import DetectionConfig, load_config
from agent.core.tabular import read_csv
from agent.errors import ConfigError
from agent.ops.counters import CounterRegistry
from agent.paths import firmware_configs
from agent.pipeline.build import build_line
from agent.pipeline.line import LineMonitor, LineResult
from agent.pipeline.replay import DEFAULT_DETECTION, SOURCE
from agent.runtime.snapshot_file import fingerprint, snapshot_path, write_atomically
from agent.runtime.snapshots import DetectorSnapshots, Owner
from agent.sinks.scada.limits import AgentCounters
from agent.types import EventKind, EventState, Quality, Sample, TagReading

FaultRows = tuple[Bundle, np.ndarray]


def test_the_state_examples_of_the_window_and_the_alarms_run() -> None:
    import agent.core.window as window
    import agent.pipeline.events.alarms as alarms

    for module in (window, alarms):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


@pytest.fixture(scope="module")
def stepped(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaultRows:
    """900 simulated rows, tag 1 stepped by 6 sd over rows 400-700, one gap row at 480."""
    from agent.demo.run import write_historian

    bundle = load_bundle(bundle_dir)
    path = tmp_path_factory.mktemp("rows") / "line.csv"
    write_historian(path, rows=900, seed=5)
    values = read_csv(path, bundle.manifest.channel_names).values.copy()
    values[400:700, 1] += 6.0 * values[:400, 1].std()
    values[480, 0] = math.nan  # a gap: the window starts again, partly full at row 490
    return bundle, values


def monitor_of(bundle: Bundle, detection: DetectionConfig = DEFAULT_DETECTION) -> LineMonitor:
    return build_line(bundle, detection, SOURCE)


def feed(monitor: LineMonitor, rows: np.ndarray, start: int = 0) -> list[LineResult]:
    results = []
    for i, row in enumerate(rows, start):
        readings = {
            c: TagReading(float(v)) if math.isfinite(v) else TagReading(math.nan, Quality.BAD)
            for c, v in zip(monitor.channels, row, strict=True)
        }
        results.append(monitor.process(Sample(ts=float(i), source=SOURCE, readings=readings)))
    return results


def comparable(result: LineResult) -> LineResult:
    """The result with its events' random ids blanked."""
    return replace(result, events=tuple(replace(e, event_id="") for e in result.events))


def owner(bundle: Bundle, **over: object) -> Owner:
    m = bundle.manifest
    fields: dict[str, object] = {
        "line": SOURCE, "model_version": m.model_version, "label": m.label,
        "channels": m.channel_names,
    }  # fmt: skip
    fields.update(over)
    return Owner(**fields)  # type: ignore[arg-type]


def saved(tmp_path: Path, bundle: Bundle, rows: np.ndarray, **over: object) -> Path:
    """A snapshot file of a monitor fed `rows`, as the agent writes it."""
    monitor = monitor_of(bundle)
    feed(monitor, rows)
    path = snapshot_path(tmp_path, SOURCE)
    write_atomically(path, DetectorSnapshots.take(monitor, owner(bundle, **over)))
    return path


def state_text(monitor: LineMonitor) -> str:
    return json.dumps(monitor.state(), sort_keys=True)


@pytest.mark.parametrize(
    ("at", "fusion", "smoothing"),
    [(490, "vae-plus-shift", 0.5), (520, "vae-or-sustained-spc", None), (650, "shift", None)],
)
def test_a_restored_monitor_continues_exactly_like_the_one_that_was_saved(
    stepped: FaultRows, tmp_path: Path, at: int, fusion: str, smoothing: float | None
) -> None:
    bundle, rows = stepped
    detection = replace(DEFAULT_DETECTION, fusion=fusion, smoothing=smoothing)
    running = monitor_of(bundle, detection)
    feed(running, rows[:at])
    assert running.shift_active  # saved in the middle of the fault, its baseline frozen
    snapshots = DetectorSnapshots(tmp_path / "state.json", 10.0, 3600.0)
    write_atomically(snapshots.path, snapshots.take(running, owner(bundle)))

    restarted = monitor_of(bundle, detection)
    assert snapshots.restore(restarted, owner(bundle))
    assert snapshots.stats.restored == 1 and snapshots.stats.refused == 0
    assert state_text(restarted) == state_text(running)
    after = [comparable(r) for r in feed(restarted, rows[at:], at)]
    assert after == [comparable(r) for r in feed(running, rows[at:], at)]
    shift = [r.shift_alarm_active for r in after]
    assert shift[0] and not shift[-1]  # held right after the restart, cleared once the tag is back
    # The restart this guards against: a fresh start learns the faulty level as its baseline.
    fresh = feed(monitor_of(bundle, detection), rows[at:], at)
    assert not any(r.shift_alarm_active for r in fresh[:20])


def test_a_snapshot_of_another_model_line_or_channel_list_is_refused(
    stepped: FaultRows, tmp_path: Path
) -> None:
    bundle, rows = stepped
    path = saved(tmp_path, bundle, rows[:520])
    version = bundle.manifest.model_version
    cases = [
        (owner(bundle, model_version=version + 1, label="v+1"), "other-model"),
        (owner(bundle, line="extruder-2"), "other-line"),
        (owner(bundle, channels=bundle.manifest.channel_names[::-1]), "other-channels"),
    ]
    for who, reason in cases:
        monitor = monitor_of(bundle)
        fresh = state_text(monitor)
        registry = CounterRegistry()
        snapshots = DetectorSnapshots(path, 10.0, 3600.0, registry)
        counters = AgentCounters(registry)
        assert not snapshots.restore(monitor, who)
        assert snapshots.stats.refusal == reason and snapshots.stats.refused == 1
        assert counters.snapshots_refused == 1 and counters.snapshot_refused_reason == reason
        assert state_text(monitor) == fresh and not monitor.shift_active
    assert path.exists()  # a refused snapshot is not corrupt: it stays until overwritten


def test_a_snapshot_too_old_from_the_future_or_with_restore_off_is_refused(
    stepped: FaultRows, tmp_path: Path
) -> None:
    bundle, rows = stepped
    path = saved(tmp_path, bundle, rows[:520])
    written = json.loads(path.read_text())["written_at"]
    for max_age, now, reason in (
        (3600.0, written + 3601.0, "too-old"),
        (3600.0, written - 600.0, "clock-changed"),
        (0.0, written + 1.0, "restore-off"),
    ):
        monitor = monitor_of(bundle)
        snapshots = DetectorSnapshots(path, 10.0, max_age)
        assert not snapshots.restore(monitor, owner(bundle), now=now)
        assert snapshots.stats.refusal == reason
        assert not monitor.shift_active
    assert DetectorSnapshots(path, 10.0, 3600.0).restore(
        monitor_of(bundle), owner(bundle), now=written + 3599.0
    )


def test_a_snapshot_that_does_not_fit_the_monitor_leaves_it_fresh(
    stepped: FaultRows, tmp_path: Path
) -> None:
    bundle, rows = stepped
    path = saved(tmp_path, bundle, rows[:520])
    # Another fusion mode changes the detector fingerprint; another rule span the alarm's shape.
    other = monitor_of(bundle, replace(DEFAULT_DETECTION, fusion="vae-or-shift"))
    snapshots = DetectorSnapshots(path, 10.0, 3600.0)
    assert not snapshots.restore(other, owner(bundle))
    assert snapshots.stats.refusal == "other-detectors"
    wider = monitor_of(bundle, replace(DEFAULT_DETECTION, spc_span=7))
    fresh = state_text(wider)
    snapshots = DetectorSnapshots(path, 10.0, 3600.0)
    assert not snapshots.restore(wider, owner(bundle))
    assert snapshots.stats.refusal == "does-not-fit"
    assert state_text(wider) == fresh  # nothing half restored


@pytest.mark.parametrize(
    "content",
    [b'{"format": 1, "line": "repl', b"\xff\xfe garbage", b"[1, 2]", b'{"format": 1}'],
)
def test_a_corrupt_snapshot_is_moved_aside_and_the_agent_starts_fresh(
    bundle_dir: Path, tmp_path: Path, content: bytes
) -> None:
    bundle = load_bundle(bundle_dir)
    path = snapshot_path(tmp_path, SOURCE)
    path.write_bytes(content)
    monitor = monitor_of(bundle)
    fresh = state_text(monitor)
    snapshots = DetectorSnapshots(path, 10.0, 3600.0)
    assert not snapshots.restore(monitor, owner(bundle))
    assert snapshots.stats.refusal == "corrupt"
    assert not path.exists()
    (aside,) = tmp_path.glob(f"{path.name}.*.corrupt")
    assert aside.read_bytes() == content  # nothing lost
    assert state_text(monitor) == fresh


def test_no_snapshot_is_a_fresh_start_not_a_refusal(bundle_dir: Path, tmp_path: Path) -> None:
    snapshots = DetectorSnapshots(tmp_path / "none.json", 10.0, 3600.0)
    bundle = load_bundle(bundle_dir)
    assert not snapshots.restore(monitor_of(bundle), owner(bundle))
    assert snapshots.stats.refused == 0 and snapshots.stats.refusal == ""


async def test_a_write_still_running_skips_the_next_and_a_failed_one_is_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    # A FIFO where the temp file goes: the writer's open() blocks until someone reads it,
    # a real write held in progress.
    os.mkfifo(temp_path(path))
    registry = CounterRegistry()
    snapshots = DetectorSnapshots(path, 10.0, 3600.0, registry)
    counters = AgentCounters(registry)
    assert snapshots.offer({"n": 1})
    assert not snapshots.offer({"n": 2})  # returns at once; the loop never waits on the disk
    assert snapshots.stats.skipped == 1 and counters.snapshots_skipped == 1
    fd = await asyncio.to_thread(os.open, temp_path(path), os.O_RDONLY)
    try:
        assert await asyncio.to_thread(os.read, fd, 100) == b'{"n":1}'
    finally:
        os.close(fd)
    assert snapshots._writing is not None
    await asyncio.wrap_future(snapshots._writing)
    assert snapshots.stats.failed == 1  # fsync of a pipe fails: counted, not raised
    assert not temp_path(path).exists()  # the failed temp file is removed
    assert snapshots.offer({"n": 3})
    await asyncio.wrap_future(snapshots._writing)
    assert json.loads(path.read_text()) == {"n": 3} and counters.snapshots_written == 1

    gone = DetectorSnapshots(tmp_path / "missing" / "state.json", 10.0, 3600.0)
    assert gone.offer({"n": 4})
    assert gone._writing is not None
    await asyncio.wrap_future(gone._writing)
    assert gone.stats.failed == 1 and "No such file" in gone.stats.last_error


async def test_the_last_snapshot_at_stop_is_written_only_after_progress(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    snapshots = DetectorSnapshots(path, 10.0, 3600.0)
    await snapshots.aclose(lambda: {"n": 1}, lambda: 0)  # no sample since start: nothing new
    assert not path.exists()
    snapshots = DetectorSnapshots(path, 10.0, 3600.0)
    await snapshots.aclose(lambda: {"n": 2}, lambda: 5)
    assert json.loads(path.read_text()) == {"n": 2}


def test_the_fingerprint_follows_the_detector_parameters(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    base = fingerprint(monitor_of(bundle))
    assert fingerprint(monitor_of(bundle)) == base
    flat = replace(DEFAULT_DETECTION, flatline_samples=DEFAULT_DETECTION.flatline_samples + 1)
    assert fingerprint(monitor_of(bundle, flat)) != base


SITE = firmware_configs() / "sites" / "demo-extruder.toml"


def site_text() -> str:
    """The example site without its own state settings, its tag map by absolute path."""
    lines = [ln for ln in SITE.read_text().splitlines(True) if not ln.startswith("state_")]
    return "".join(lines).replace('"../plc/', f'"{firmware_configs() / "plc"}/')


@pytest.mark.parametrize(
    ("line", "field", "fix"),
    [
        ("state_interval_s = -5", "detection.state_interval_s", "state_interval_s = 10"),
        ("state_interval_s = 0", "detection.state_interval_s", "state_max_age_s = 0"),
        ("state_interval_s = nan", "detection.state_interval_s", "state_interval_s = 10"),
        ('state_interval_s = "10 s"', "detection.state_interval_s", ""),
        ("state_max_age_s = -1.0", "detection.state_max_age_s", "state_max_age_s = 3600"),
        ("state_max_age_s = inf", "detection.state_max_age_s", "never restore"),
        ("state_max_age = 60", "detection.state_max_age", "state_max_age_s"),
    ],
)
def test_malformed_state_settings_name_the_field_and_the_fix(
    tmp_path: Path, line: str, field: str, fix: str
) -> None:
    text = site_text().replace("[detection]\n", f"[detection]\n{line}\n", 1)
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == field
    assert fix in info.value.fix


def test_the_state_settings_are_read_and_default(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(site_text().replace("[detection]\n", "[detection]\nstate_max_age_s = 0\n", 1))
    detection = load_config(path).detection
    assert (detection.state_interval_s, detection.state_max_age_s) == (10.0, 0.0)


def test_the_raise_edge_of_an_open_alarm_comes_back_with_its_event_id(
    stepped: FaultRows, tmp_path: Path
) -> None:
    bundle, rows = stepped
    detection = replace(DEFAULT_DETECTION, fusion="shift")
    running = monitor_of(bundle, detection)
    saver = DetectorSnapshots(tmp_path / "state.json", 10.0, 3600.0)
    for result in feed(running, rows[:520]):
        saver.observe(result)
    raised = saver.open_alarms[EventKind.ANOMALY]  # the fused raise, not cleared yet
    assert raised.state is EventState.RAISED and raised.detector == "shift"
    write_atomically(saver.path, saver.take(running, owner(bundle), saver.open_alarms.values()))
    loader = DetectorSnapshots(saver.path, 10.0, 3600.0)
    assert loader.restore(monitor_of(bundle, detection), owner(bundle))
    assert loader.reopened == list(saver.open_alarms.values())  # the same edges, ids included
    assert raised in loader.reopened
    later = feed(running, rows[520:521])[0]
    loader.observe(replace(later, events=(replace(raised, state=EventState.CLEARED),)))
    assert EventKind.ANOMALY not in loader.open_alarms  # a clear closes it


def test_the_piecewise_encoding_is_the_json_of_the_snapshot(stepped: FaultRows) -> None:
    from agent.runtime.snapshot_file import encode

    bundle, rows = stepped
    monitor = monitor_of(bundle)
    feed(monitor, rows[:450])
    snapshot = DetectorSnapshots.take(monitor, owner(bundle))
    assert encode(snapshot) == json.dumps(snapshot, separators=(",", ":")).encode()
