"""Units, ranges and status codes of the SCADA model: pure functions, checked by value."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from asyncua import ua

from agent.config import NodeTag, Tag
from agent.config.tagmaps import load_tag_map
from agent.core.codec import Scaling
from agent.errors import ConfigError
from agent.paths import firmware_configs
from agent.sinks.scada.limits import status_of
from agent.sinks.scada.model import UNECE_URI, eu_information, eu_range, unece_id
from agent.types import Quality, TagReading

TAGS = {
    t.name: t for t in load_tag_map(firmware_configs() / "plc" / "simulated-extruder.toml").tags
}


def test_unece_codes_follow_opc_10000_8() -> None:
    assert unece_id("CEL") == 0x43454C  # the example in OPC 10000-8 5.6.3
    assert unece_id("2X") == 0x3258
    info = eu_information("bar")
    assert (info.NamespaceUri, info.UnitId, info.DisplayName.Text) == (
        UNECE_URI,
        unece_id("BAR"),
        "bar",
    )


def test_a_unit_without_a_known_code_keeps_its_text_and_no_id() -> None:
    info = eu_information("g")  # acceleration in g on a vibration sensor, not grams
    assert (info.NamespaceUri, info.UnitId, info.DisplayName.Text) == ("", -1, "g")


def test_eu_range_is_what_the_register_holds_after_scaling() -> None:
    barrel = TAGS["barrel_temp"]  # int16 in tenths of a degree
    assert isinstance(barrel, Tag)
    r = eu_range(barrel)
    assert (r.Low, r.High) == (-3276.8, 3276.7)
    node_tag = NodeTag("x", "ns=2;s=x", Scaling(), "bar", "")
    assert eu_range(node_tag).High == math.inf  # an OPC-UA source says nothing about its range


def test_status_codes_carry_the_quality_and_the_reason() -> None:
    assert status_of(TagReading(1.0)) == ua.StatusCodes.Good
    assert status_of(TagReading(math.inf, Quality.UNCERTAIN, "PLC sent inf")) == (
        ua.StatusCodes.UncertainSensorNotAccurate
    )
    bad = {
        "timed out after 0.5 s": ua.StatusCodes.BadTimeout,
        "exception 2 (illegal data address)": ua.StatusCodes.BadDeviceFailure,
        "CRC mismatch": ua.StatusCodes.BadCommunicationError,
        "connection refused by 10.0.0.1:502": ua.StatusCodes.BadNoCommunication,
        "BadNodeIdUnknown": ua.StatusCodes.BadNodeIdUnknown,  # from an OPC-UA source, kept
    }
    for reason, code in bad.items():
        assert status_of(TagReading(math.nan, Quality.BAD, reason)) == code, reason


def test_eu_range_comes_from_the_tag_map_when_given() -> None:
    r = eu_range(TAGS["melt_pressure"])
    assert (r.Low, r.High) == (0.0, 400.0)


def test_a_bad_range_in_a_tag_map_names_the_field(tmp_path: Path) -> None:
    text = (firmware_configs() / "plc" / "simulated-extruder.toml").read_text()
    for bad, words in (("[400.0, 0.0]", "is not below"), ('["a", 1]', "two numbers")):
        path = tmp_path / "map.toml"
        path.write_text(text.replace("range = [0.0, 400.0]", f"range = {bad}"))
        with pytest.raises(ConfigError) as info:
            load_tag_map(path)
        assert info.value.field == "tag[5].range" and words in info.value.problem
