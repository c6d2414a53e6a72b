"""Spec limits in tag maps and node maps: read as engineering values, every bad case refused.

Each bad case must raise a ConfigError naming the dotted field (`tag[0].usl`, ...) and a fix,
from a real TOML file read by the real loaders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import load_node_map, load_tag_map
from agent.core.spc.capability import capability
from agent.errors import ConfigError


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def write(path: Path, *tags: dict[str, Any]) -> Path:
    lines: list[str] = []
    for tag in tags:
        lines.append("[[tag]]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in tag.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def modbus(name: str = "bore", **spec: Any) -> dict[str, Any]:
    address = 0 if name == "bore" else 10
    return {"name": name, "address": address, "type": "float32", "unit": "mm", **spec}


def opcua(name: str = "bore", **spec: Any) -> dict[str, Any]:
    return {"name": name, "node_id": f"ns=2;s=Line1.{name}", **spec}


LOADERS = [
    pytest.param(load_tag_map, modbus, id="modbus"),
    pytest.param(load_node_map, opcua, id="opcua"),
]


@pytest.mark.parametrize(("load", "tag"), LOADERS)
def test_spec_limits_are_read(tmp_path: Path, load: Any, tag: Any) -> None:
    path = write(tmp_path / "m.toml", tag(lsl=73.95, usl=74.05, target=74), tag(name="other"))
    first, second = load(path).tags
    assert (first.lsl, first.usl, first.target) == (73.95, 74.05, 74.0)
    assert isinstance(first.target, float)
    assert (second.lsl, second.usl, second.target) == (None, None, None)
    c = capability([74.0, 74.01, 73.99, 74.0], first.lsl, first.usl, first.target)
    assert c.cp is not None and c.cpm is not None


@pytest.mark.parametrize(("load", "tag"), LOADERS)
@pytest.mark.parametrize("spec", [{"usl": 5.0}, {"lsl": -1}, {"lsl": 0.0, "target": 2.5}])
def test_one_sided_specs_are_allowed(
    tmp_path: Path, load: Any, tag: Any, spec: dict[str, float]
) -> None:
    read = load(write(tmp_path / "m.toml", tag(**spec))).tags[0]
    for key, value in spec.items():
        assert getattr(read, key) == value


BAD = [
    ({"lsl": 5.0, "usl": 5.0}, "usl", "must be below usl"),
    ({"lsl": 6.0, "usl": 5.0}, "usl", "must be below usl"),
    ({"lsl": 0.0, "usl": 5.0, "target": 7.0}, "target", "must lie within"),
    ({"lsl": 3.0, "target": 2.0}, "target", "must lie within"),
    ({"usl": 3.0, "target": 4.0}, "target", "must lie within"),
    ({"target": 2.0}, "lsl", "at least one spec limit"),
    ({"lsl": float("nan"), "usl": 1.0}, "lsl", "finite"),
    ({"usl": float("inf")}, "usl", "finite"),
    ({"lsl": 0.0, "usl": 1.0, "target": float("-inf")}, "target", "finite"),
    ({"lsl": "low"}, "lsl", "must be a float"),
    ({"usl": True}, "usl", "must be a float"),
]


@pytest.mark.parametrize(("load", "tag"), LOADERS)
@pytest.mark.parametrize(("spec", "field", "problem"), BAD)
def test_bad_spec_names_the_field_and_the_fix(
    tmp_path: Path, load: Any, tag: Any, spec: dict[str, Any], field: str, problem: str
) -> None:
    path = write(tmp_path / "m.toml", tag(name="ok", lsl=0.0), tag(**spec))
    with pytest.raises(ConfigError) as info:
        load(path)
    error = info.value
    assert error.field == f"tag[1].{field}"
    assert problem in error.problem
    assert error.source == str(path)
    if "must be a float" not in problem:
        assert "lsl <= target <= usl" in error.fix


@pytest.mark.parametrize(
    "tag",
    [
        {"name": "run", "address": 0, "type": "bool", "bit": 0, "usl": 1.0},
        {"name": "batch", "address": 0, "type": "string", "length": 8, "lsl": 0.0},
        {"name": "door", "table": "coil", "address": 0, "target": 1.0, "lsl": 0.0},
    ],
)
def test_spec_limits_on_a_non_numeric_tag_are_refused(tmp_path: Path, tag: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        load_tag_map(write(tmp_path / "m.toml", tag))
    assert info.value.field in ("tag[0].lsl", "tag[0].usl", "tag[0].target")
    assert "has no spec limits" in info.value.problem


def test_the_shipped_extruder_map_carries_melt_temperature_specs() -> None:
    path = Path(__file__).resolve().parents[3] / "firmware-configs/plc/simulated-extruder.toml"
    melt = next(t for t in load_tag_map(path).tags if t.name == "melt_temp")
    assert (melt.lsl, melt.target, melt.usl) == (205.0, 215.0, 225.0)
