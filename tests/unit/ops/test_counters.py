"""The counter registry: services register their own stats once, Agent/ reads them live."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import agent.ops.counters
from agent.ops.counters import CounterRegistry
from agent.runtime.snapshots import DetectorSnapshots
from agent.sinks.explainer import ExplainerStats
from agent.sinks.journal import Journal, JournalStats
from agent.sinks.scada.limits import AGENT_VARIABLES, AgentCounters


def test_the_registry_example_runs() -> None:
    result = doctest.testmod(agent.ops.counters)
    assert result.attempted > 0 and result.failed == 0


def test_a_view_is_read_live_and_a_name_is_taken_once() -> None:
    registry, stats = CounterRegistry(), JournalStats()
    registry.register("journal", stats)
    registry.register("journal", stats)  # the same object again: harmless
    stats.dropped = 3
    assert registry.read("journal", "dropped", 0) == 3 and registry.view("journal") is stats
    assert registry.read("snapshots", "written", 7) == 7 and registry.names() == ["journal"]
    with pytest.raises(ValueError, match="journal"):
        registry.register("journal", JournalStats())


def test_agent_variables_read_the_services_own_stats(tmp_path: Path) -> None:
    registry = CounterRegistry()
    journal = Journal(tmp_path / "journal.sqlite", registry=registry)
    snapshots = DetectorSnapshots(tmp_path / "state.json", 10.0, 3600.0, registry)
    counters = AgentCounters(registry)
    # nothing registered for the loop or the explainer: the defaults AgentCounters had
    assert counters.samples_processed == 0 and counters.explainer_rejections == 0
    assert counters.journal_ok is True and counters.snapshot_refused_reason == ""
    journal.stats.healthy, journal.stats.write_errors = False, 2
    snapshots.stats.refused, snapshots.stats.refusal = 1, "too-old"
    explained = ExplainerStats(rejected={"unknown-tag": 2, "timeout": 1}, worker_crashes=1)
    explained.worker_timeouts = 2
    registry.register("explainer", explained)
    assert (counters.journal_ok, counters.journal_write_errors) == (False, 2)
    assert (counters.snapshots_refused, counters.snapshot_refused_reason) == (1, "too-old")
    assert (counters.explainer_rejections, counters.explainer_worker_failures) == (3, 3)
    with pytest.raises(AttributeError):
        _ = counters.no_such_counter
    with pytest.raises(AttributeError):
        counters.samples_processed = 1  # read-only: the services own the counts


def test_every_agent_variable_has_a_unique_name_and_a_published_default() -> None:
    names = [v.name for v in AGENT_VARIABLES]
    assert len(names) == len(set(names)) == 31
    empty = CounterRegistry()
    published = {v.name: v.value(empty) for v in AGENT_VARIABLES}
    assert published["Health"] == "starting" and published["JournalOk"] is True
    assert published["LoopLatencyMs"] == 0.0 and published["SnapshotRefusedReason"] == ""
    assert published["RecordingState"] == "off" and published["RecordedRows"] == 0


def test_the_lines_shares_of_a_service_are_published_as_their_sum() -> None:
    registry = CounterRegistry()
    one, two = ExplainerStats(), ExplainerStats()
    registry.register_part("explainer", one)
    assert registry.view("explainer") is one  # a single line: its own stats, nothing wrapped
    registry.register_part("explainer", two)
    one.dropped, two.dropped = 2, 5
    assert registry.read("explainer", "dropped", 0) == 7
    by_name = {var.name: var for var in AGENT_VARIABLES}
    assert by_name["ExplainerQueueDrops"].value(registry) == 7
