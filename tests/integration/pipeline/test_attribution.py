"""The right tag, the right cause and the forecast, through the live pipeline objects with a
bundle trained by the export path: the demo line's thermocouple drift and pressure step."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from agent.bundles.bundle import Bundle, load_bundle
from agent.config import load_config
from agent.config.catalogue import Catalogue
from agent.demo.simulator.process import SIGNAL_NAMES, ExtrusionLine, Fault, FaultKind
from agent.explain.facts import Facts, build_facts
from agent.explain.guard import check
from agent.explain.template import render
from agent.paths import firmware_configs
from agent.pipeline.build import build_line
from agent.pipeline.evidence import Evidence
from agent.pipeline.line import LineResult
from agent.sinks.explainer import line_context
from agent.types import EventState, Sample, TagReading

LINE = "extruder-1"


@pytest.fixture(scope="module")
def bundle(bundle_dir: Path) -> Bundle:
    return load_bundle(bundle_dir)


def run(
    bundle: Bundle, fault: Fault, catalogue: Catalogue, seed: int = 5
) -> list[tuple[LineResult, Facts]]:
    """Ten minutes of normal line, then `fault` for 90 s: each raised alarm with its facts."""
    detection = load_config(firmware_configs() / "sites" / "demo-extruder.toml").detection
    monitor = build_line(bundle, detection, LINE)
    ctx = line_context(bundle, LINE)
    evidence = Evidence(ctx.channels)
    line = ExtrusionLine(seed=seed)
    raised = []
    for k in range(600 + 90):
        if k == 600:
            line.inject(fault)
        row = line.step()
        sample = Sample(
            line.t, "sim", {n: TagReading(float(v)) for n, v in zip(SIGNAL_NAMES, row, strict=True)}
        )
        result = monitor.process(sample)
        for snap in evidence.observe(result):
            assert k >= 600, f"a false alarm before the fault: {snap.event.message}"
            raised.append((result, build_facts(snap, ctx, catalogue)))
    assert raised, "the fault was not detected"
    return raised


def top_tag(bundle: Bundle, result: LineResult) -> str:
    assert result.attribution is not None
    return bundle.manifest.channel_names[int(np.argmax(result.attribution))]


def test_the_drifting_thermocouple_is_named_over_its_correlated_neighbour(
    bundle: Bundle, catalogue: Catalogue
) -> None:
    names = bundle.manifest.channel_names
    corr = np.asarray(bundle.manifest.training["correlation"])
    # the neighbour the VAE's error leaks to: both follow the hall temperature
    assert corr[names.index("barrel_temp"), names.index("cooling_water_temp")] >= 0.7

    raised = run(bundle, Fault(FaultKind.DRIFT, "barrel_temp", 0.04), catalogue)
    result, facts = raised[0]
    assert top_tag(bundle, result) == "barrel_temp"
    event = next(e for e in result.events if e.state is EventState.RAISED)
    assert event.tag == "barrel_temp"
    assert next(iter(event.details["attribution"])) == "barrel_temp"
    assert facts.tags[0].tag == "barrel_temp" and facts.tags[0].direction == "drift-up"
    assert facts.causes[0].id == "thermocouple-drift"

    # the forecast: in the facts, in the text, and accepted by the guard as bound facts
    with_forecast = [f for _, f in raised if f.tags[0].forecast is not None]
    assert with_forecast, "no explanation of the drift carried its forecast"
    facts = with_forecast[0]
    forecast = facts.tags[0].forecast
    assert forecast is not None and forecast.limit.side == "upper"
    assert forecast.low_s <= forecast.seconds <= forecast.high_s
    assert forecast.rate == pytest.approx(0.04, rel=0.5)
    text = render(facts, "en")
    assert "barrel_temp reaches its upper" in text and "at the current rate" in text
    verdict = check(text, facts, catalogue)
    assert verdict.accepted, verdict
    zh = render(facts, "zh")
    assert "按当前速率" in zh
    assert check(zh, facts, catalogue, language="zh").accepted

    # a number of minutes the facts do not hold is refused, as any other number
    wrong = re.sub(r"in about [0-9.]+", "in about 999", text)
    assert wrong != text
    assert check(wrong, facts, catalogue).reason == "wrong-number"


def test_every_explanation_of_the_pressure_step_names_the_transducer(
    bundle: Bundle, catalogue: Catalogue
) -> None:
    raised = run(bundle, Fault(FaultKind.STEP, "melt_pressure", 8.0), catalogue)
    for result, facts in raised:
        assert top_tag(bundle, result) == "melt_pressure"
        assert facts.causes[0].id == "pressure-transducer-offset", [c.id for c in facts.causes]
        assert "melt pressure transducer offset" in render(facts, "en")


def test_the_motor_current_that_stops_following_the_load_is_miswired(
    bundle: Bundle, catalogue: Catalogue
) -> None:
    raised = run(bundle, Fault(FaultKind.DECOUPLE, "motor_current", 1.4), catalogue)
    result, facts = raised[0]
    assert top_tag(bundle, result) == "motor_current"
    assert facts.causes and facts.causes[0].id == "current-signal-miswired"
