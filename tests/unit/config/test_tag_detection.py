"""`role` and `detect` on tag-map and node-map entries: defaults, what a role implies, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_node_map, load_tag_map
from agent.config.tagmaps import ROLES
from agent.errors import ConfigError


def _modbus(path: Path, *extras: str) -> Path:
    """A tag map of float32 tags, one per `extras` entry (its extra TOML lines)."""
    blocks = [
        f'[[tag]]\nname = "t{i}"\naddress = {2 * i}\ntype = "float32"\n{extra}\n'
        for i, extra in enumerate(extras)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def _nodes(path: Path, *extras: str) -> Path:
    blocks = [
        f'[[tag]]\nname = "t{i}"\nnode_id = "ns=2;s=T{i}"\n{extra}\n'
        for i, extra in enumerate(extras)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def _tag_map_error(tmp_path: Path, extra: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_tag_map(_modbus(tmp_path / "map.toml", "", extra))
    return info.value


def test_a_tag_is_a_process_tag_in_detection_by_default(tmp_path: Path) -> None:
    tag = load_tag_map(_modbus(tmp_path / "map.toml", "")).tags[0]
    assert (tag.role, tag.detect) == ("process", True)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "process"])
def test_a_non_process_role_keeps_the_tag_out_of_detection(tmp_path: Path, role: str) -> None:
    tag = load_tag_map(_modbus(tmp_path / "map.toml", f'role = "{role}"')).tags[0]
    assert (tag.role, tag.detect) == (role, False)


def test_detect_true_keeps_a_setpoint_in_detection(tmp_path: Path) -> None:
    tag = load_tag_map(_modbus(tmp_path / "map.toml", 'role = "setpoint"\ndetect = true')).tags[0]
    assert (tag.role, tag.detect) == ("setpoint", True)


def test_detect_false_takes_a_process_tag_out(tmp_path: Path) -> None:
    tags = load_tag_map(_modbus(tmp_path / "map.toml", "", "detect = false")).tags
    assert [(t.role, t.detect) for t in tags] == [("process", True), ("process", False)]


def test_a_coil_may_carry_a_role(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('[[tag]]\nname = "pump_on"\ntable = "coil"\naddress = 0\nrole = "status"\n')
    tag = load_tag_map(path).tags[0]
    assert (tag.role, tag.detect) == ("status", False)


def test_an_unknown_role_names_the_field_and_the_allowed_roles(tmp_path: Path) -> None:
    error = _tag_map_error(tmp_path, 'role = "alarm"')
    assert error.field == "tag[1].role"
    assert "'alarm' is not one of process, setpoint, status, counter" in error.problem
    assert "keep the tag out of detection" in error.fix


def test_detect_must_be_a_boolean(tmp_path: Path) -> None:
    error = _tag_map_error(tmp_path, 'detect = "no"')
    assert error.field == "tag[1].detect"
    assert "must be a bool, got str 'no'" in error.problem
    assert error.fix == "write detect = true or false"


def test_role_must_be_a_string(tmp_path: Path) -> None:
    error = _tag_map_error(tmp_path, "role = 1")
    assert error.field == "tag[1].role"
    assert "must be a str" in error.problem


def test_node_tags_take_the_same_keys(tmp_path: Path) -> None:
    path = _nodes(tmp_path / "nodes.toml", "", 'role = "counter"', "detect = false")
    tags = load_node_map(path).tags
    assert [(t.role, t.detect) for t in tags] == [
        ("process", True),
        ("counter", False),
        ("process", False),
    ]


def test_a_node_tag_with_a_bad_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_node_map(_nodes(tmp_path / "nodes.toml", 'role = "Setpoint"'))
    assert info.value.field == "tag[0].role"
    assert "is not one of" in info.value.problem
