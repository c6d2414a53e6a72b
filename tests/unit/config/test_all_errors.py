"""One load of a site reports every independent mistake, each with its own field and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config, load_tag_map
from agent.errors import ConfigError, ConfigErrors
from tests.config_helpers import SITE, TAG_MAP, write_site


def three_mistakes(tmp_path: Path) -> Path:
    """The demo site with two bad tags, a bad [[plc]] port and a bad [detection] value."""
    tag_map = (
        TAG_MAP.read_text()
        .replace(
            'type = "float32"\norder = "ABCD"\nunit = "kg/h"', 'type = "flaot32"\nunit = "kg/h"'
        )
        .replace("address = 0\n", "address = 40001\n", 1)
    )
    site = (
        SITE.read_text()
        .replace("port = 5020", "port = 70000")
        .replace("spc_hits = 3 ", "spc_hits = 0 ")
    )
    return write_site(tmp_path, site, tag_map)


def test_every_mistake_of_a_site_is_reported_in_one_load(tmp_path: Path) -> None:
    path = three_mistakes(tmp_path)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    errors = info.value.errors
    found = {(e.field, Path(e.source).name) for e in errors}
    assert found == {
        ("detection.spc_hits", "site.toml"),
        ("plc[0].port", "site.toml"),
        ("plc[0].tag_map", "map.toml"),
    }, found
    in_map = sorted(e.problem for e in errors if e.field == "plc[0].tag_map")
    assert in_map[0].startswith("tag[0].address: 40001 looks like a Modicon")
    assert in_map[1].startswith("tag[1].type: unknown data type 'flaot32'")
    # Each line of the message is one problem with its file, field and fix.
    lines = str(info.value).splitlines()
    assert len(lines) == 4 == len(errors)
    assert all(line.startswith(str(tmp_path)) for line in lines)
    assert any("plc[0].port: 70000 is outside 1..65535" in line for line in lines)
    # A caller that handles one ConfigError still reads the first one.
    assert isinstance(info.value, ConfigError)
    assert (info.value.field, info.value.problem) == (errors[0].field, errors[0].problem)


def test_a_single_mistake_is_a_plain_config_error(tmp_path: Path) -> None:
    path = write_site(tmp_path, SITE.read_text().replace("port = 5020", "port = 70000"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert not isinstance(info.value, ConfigErrors)
    assert info.value.errors == [info.value]
    assert info.value.field == "plc[0].port"


def test_a_tag_map_reports_every_bad_tag_and_keeps_checking_overlaps(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text(
        "typo_key = 1\n"
        '[[tag]]\nname = "a"\naddress = 0\ntype = "float32"\n'
        '[[tag]]\nname = "b"\naddress = 1\ntype = "int16"\n'  # overlaps a
        '[[tag]]\nname = "c"\naddress = 70000\ntype = "int16"\n'
        '[[tag]]\nname = "a"\naddress = 9\ntype = "int16"\n'  # duplicate name
        '[[tag]]\nname = "d"\naddress = 2\ntype = "int16"\nunknown = 3\nother = 4\n'
    )
    with pytest.raises(ConfigErrors) as info:
        load_tag_map(path)
    assert [e.field for e in info.value.errors] == [
        "typo_key",
        "tag[1].address",
        "tag[2].address",
        "tag[3].name",
        "tag[4].unknown",
        "tag[4].other",
    ]


def test_several_plcs_each_report_their_own_mistakes(tmp_path: Path) -> None:
    site = SITE.read_text()
    plc = site[site.index("[[plc]]") : site.index("[explain]")]
    second = plc.replace('name = "extruder-plc"', 'name = "second"').replace(
        "unit = 1", "unit = 300"
    )
    broken = site.replace(plc, plc.replace('host = "127.0.0.1"\n', "") + second)
    path = write_site(tmp_path, broken)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert [e.field for e in info.value.errors] == ["plc[0].host", "plc[1].unit"]
