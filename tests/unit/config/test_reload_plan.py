"""A refused reload names the field that changed, down to the leaf, as the site file spells it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.config import load_config
from agent.config.reload import MAX_LEAVES, changed_fields, plan_reload
from tests.config_helpers import SITE, TAG_MAP, write_site


def _edited(tmp_path: Path, old: str, new: str, tag_map: str | None = None) -> Path:
    text = SITE.read_text()
    assert old in text
    return write_site(tmp_path, text.replace(old, new, 1), tag_map)


def test_a_changed_plc_port_is_named_with_its_index(tmp_path: Path) -> None:
    old = load_config(write_site(tmp_path))
    new = load_config(_edited(tmp_path, "port = 5020", "port = 5021"))
    plan = plan_reload(old, new)
    assert plan.refused and plan.restart == ("plc[0].port",)


def test_a_changed_timeout_and_unit_are_named(tmp_path: Path) -> None:
    old = load_config(write_site(tmp_path))
    text = (
        SITE.read_text()
        .replace("timeout_s = 0.5", "timeout_s = 0.7")
        .replace("unit = 1", "unit = 2")
    )
    new = load_config(write_site(tmp_path, text))
    assert plan_reload(old, new).restart == ("plc[0].timeout_s", "plc[0].device[0].unit")


def test_a_changed_tag_address_is_named_inside_its_tag_map(tmp_path: Path) -> None:
    old = load_config(write_site(tmp_path))
    tags = TAG_MAP.read_text().replace("address = 2\n", "address = 40\n", 1)
    new = load_config(write_site(tmp_path, tag_map=tags))
    assert plan_reload(old, new).restart == ("plc[0].device[0].tag_map.tag[1].address",)


def test_a_second_plc_is_named_as_a_count(tmp_path: Path) -> None:
    old = load_config(write_site(tmp_path))
    second = dataclasses.replace(old.plcs[0], name="second-plc")
    new = dataclasses.replace(old, plcs=(*old.plcs, second))
    assert plan_reload(old, new).restart == ("plc: 1 -> 2 entries",)


def test_a_changed_server_endpoint_and_an_applied_rule(tmp_path: Path) -> None:
    old = load_config(write_site(tmp_path))
    text = (
        SITE.read_text()
        .replace("127.0.0.1:4840", "127.0.0.1:4841")
        .replace("raise_after = 3 ", "raise_after = 4 ")
    )
    plan = plan_reload(old, load_config(write_site(tmp_path, text)))
    assert plan.apply == ("detection.raise_after",)
    assert plan.restart == ("opcua.endpoint",)


def test_nested_values_lists_and_mappings_diff_to_their_leaves() -> None:
    assert changed_fields("x", {"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3]}) == ["x.b[1]"]
    assert changed_fields("x", {"a": 1}, {"a": 1, "c": 2}) == ["x.c"]
    assert changed_fields("x", 1, 1) == []
    assert changed_fields("x", "a", 2) == ["x"]


def test_many_changes_are_cut_with_a_count(tmp_path: Path) -> None:
    old = load_config(write_site(tmp_path))
    tags = TAG_MAP.read_text().replace("address = ", "address = 1")  # every tag moves
    restart = plan_reload(old, load_config(write_site(tmp_path, tag_map=tags))).restart
    assert len(restart) == MAX_LEAVES + 1 and restart[-1].startswith("and ")
    assert restart[0] == "plc[0].device[0].tag_map.tag[0].address"
