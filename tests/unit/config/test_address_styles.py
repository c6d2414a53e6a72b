"""Tag-map address styles: protocol (default), Modicon references, 1-based; 40001 never silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import load_tag_map
from agent.config.addresses import looks_like_modicon, modicon_text, parse_modicon
from agent.core.codec import DataType
from tests.unit.config.test_tagmaps import map_error, write_map


def styled(style: str) -> str:
    return f'address_style = "{style}"\n'


def locations(path: Path) -> list[tuple[str, str, int]]:
    return [(t.name, t.table, t.address) for t in load_tag_map(path).tags]


@pytest.mark.parametrize(
    ("address", "fixed"),
    [(40001, 0), (40010, 9), (30010, 9), (10001, 0), (49999, 9998), (400001, 0), (465536, 65535)],
)
def test_a_modicon_looking_address_is_refused_with_the_fix(
    tmp_path: Path, address: int, fixed: int
) -> None:
    error = map_error(
        tmp_path,
        {"name": "ok", "address": 0, "type": "int16"},
        {"name": "a", "address": address, "type": "int16"},
    )
    assert error.field == "tag[1].address"
    assert f"{address} looks like a Modicon (datasheet) reference" in error.problem
    assert 'address_style = "modicon"' in error.fix
    assert f"address = {fixed}" in error.fix
    assert 'address_style = "protocol"' in error.fix  # the way out for a real protocol address


@pytest.mark.parametrize("address", [0, 9999, 10000, 20000, 29999, 30000, 40000, 50000, 65535])
def test_protocol_addresses_that_are_no_modicon_reference_load_by_default(
    tmp_path: Path, address: int
) -> None:
    path = write_map(tmp_path / "m.toml", {"name": "a", "address": address, "type": "uint16"})
    assert locations(path) == [("a", "holding", address)]
    assert load_tag_map(path).address_style == "protocol"


def test_an_explicit_protocol_style_takes_high_addresses_as_written(tmp_path: Path) -> None:
    path = write_map(
        tmp_path / "m.toml",
        {"name": "flags", "address": 12298, "type": "uint16"},
        {"name": "hold", "address": 40001, "type": "int16"},
        head=styled("protocol"),
    )
    assert locations(path) == [("flags", "holding", 12298), ("hold", "holding", 40001)]


def test_modicon_style_sets_the_table_from_the_leading_digit(tmp_path: Path) -> None:
    path = write_map(
        tmp_path / "m.toml",
        {"name": "speed", "address": 40001, "type": "float32", "order": "CDAB"},
        {"name": "temp", "address": 30010, "type": "int16", "scale": 0.1},
        {"name": "door", "address": 10001},
        {"name": "motor", "address": 5},  # 00005: TOML drops the leading zeros
        {"name": "wide", "address": 400100, "type": "int16"},
        {"name": "far_coil", "address": "012000"},  # a 6-digit coil past 09999, as a string
        {"name": "held", "table": "holding", "address": 40003, "type": "uint16"},
        head=styled("modicon"),
    )
    assert locations(path) == [
        ("speed", "holding", 0),
        ("temp", "input", 9),
        ("door", "discrete", 0),
        ("motor", "coil", 4),
        ("wide", "holding", 99),
        ("far_coil", "coil", 11999),
        ("held", "holding", 2),
    ]
    tags = {t.name: t for t in load_tag_map(path).tags}
    assert tags["door"].dtype is DataType.BOOL and tags["motor"].dtype is DataType.BOOL


@pytest.mark.parametrize(
    ("tag", "field", "problem"),
    [
        ({"address": 40001, "table": "input"}, "table", '"input" disagrees with address 40001'),
        ({"address": 20001}, "address", "starts with 2, which names no Modicon table"),
        ({"address": 40000}, "address", "from 40001 to 49999"),
        ({"address": 400000}, "address", "from 400001 to 465536"),
        ({"address": 465537}, "address", "from 400001 to 465536"),
        ({"address": 4000001}, "address", "write 5 digits (40001) or 6 (400001)"),
        ({"address": "4x001"}, "address", "is not a Modicon reference"),
        ({"address": 0}, "address", "write 5 digits"),
    ],
)
def test_modicon_style_refuses_what_is_no_reference(
    tmp_path: Path, tag: dict[str, Any], field: str, problem: str
) -> None:
    error = map_error(tmp_path, {"name": "a", "type": "int16", **tag}, head=styled("modicon"))
    assert error.field == f"tag[0].{field}"
    assert problem in error.problem


def test_one_based_style_subtracts_one_in_the_given_table(tmp_path: Path) -> None:
    path = write_map(
        tmp_path / "m.toml",
        {"name": "a", "address": 1, "type": "int16"},
        {"name": "b", "address": 65536, "type": "int16", "table": "input"},
        {"name": "c", "address": 40001, "type": "int16"},  # taken as the user says: 40000
        head=styled("one-based"),
    )
    assert locations(path) == [("a", "holding", 0), ("b", "input", 65535), ("c", "holding", 40000)]
    error = map_error(
        tmp_path, {"name": "a", "address": 0, "type": "int16"}, head=styled("one-based")
    )
    assert error.field == "tag[0].address" and "outside 1..65536" in error.problem


def test_an_unknown_address_style_names_the_choices(tmp_path: Path) -> None:
    error = map_error(tmp_path, {"name": "a", "address": 0, "type": "int16"}, head=styled("4x"))
    assert error.field == "address_style"
    assert "protocol, modicon, one-based" in error.problem


def test_a_tag_running_past_65535_is_refused_in_every_style(tmp_path: Path) -> None:
    error = map_error(tmp_path, {"name": "a", "address": 465536, "type": "float32"},
                      head=styled("modicon"))  # fmt: skip
    assert error.field == "tag[0].address" and "runs past address 65535" in error.problem


def test_reference_helpers_round_trip() -> None:
    assert modicon_text("holding", 0) == "40001"
    assert modicon_text("coil", 0) == "00001"
    assert modicon_text("input", 65535) == "365536"
    for table in ("coil", "discrete", "input", "holding"):
        for address in (0, 9998, 9999, 65535):
            ref = parse_modicon(modicon_text(table, address))
            assert (ref.table, ref.address) == (table, address)
    assert parse_modicon(40001).describe() == "Modicon 40001 = holding register, protocol address 0"
    assert looks_like_modicon(40001) and looks_like_modicon(312000)
    assert not looks_like_modicon(9999) and not looks_like_modicon(20001)


def test_the_docstring_examples_hold() -> None:
    import doctest

    import agent.config.addresses as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
