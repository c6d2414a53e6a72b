"""`[[line]]`: a site of several lines, each checked on its own, every error naming its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.reload import plan_reload
from agent.errors import ConfigErrors
from tests.config_helpers import FIRMWARE, SITE, TAG_MAP, error_of

TWO_LINES = FIRMWARE / "sites" / "two-lines.toml"


def line_table(name: str, plc: str, port: int, extra: str = "") -> str:
    """One `[[line]]` table with one Modbus TCP PLC reading the tag map `map.toml`."""
    return f"""
[[line]]
name = "{name}"
{extra}
[[line.plc]]
name = "{plc}"
protocol = "modbus-tcp"
host = "127.0.0.1"
port = {port}
unit = 1
poll_interval_s = 1.0
timeout_s = 0.5
tag_map = "map.toml"
"""


def two_line_site(tmp_path: Path, *lines: str, top: str = "") -> Path:
    """A site of `[[line]]` tables with a journal under tmp_path and the demo tag map."""
    (tmp_path / "map.toml").write_text(TAG_MAP.read_text())
    path = tmp_path / "site.toml"
    body = f'[journal]\npath = "state/events.sqlite"\n[opcua]\nallow_anonymous = true\n{top}\n'
    body += "".join(lines)
    path.write_text(body)
    return path


def test_the_shipped_two_line_site_has_two_lines_with_their_own_models() -> None:
    config = load_config(TWO_LINES)
    assert config.line_names == ["extruder-1", "extruder-2"]
    one, two = config.line_views()
    assert one.bundle is not None and two.bundle is None  # line 2: commissioning mode
    assert [p.name for p in one.plcs] == ["extruder-1-plc"]
    assert [p.name for p in two.plcs] == ["extruder-2-plc"]
    assert [p.name for p in config.plcs] == ["extruder-1-plc", "extruder-2-plc"]
    # Tag names are per line: both lines read the same map, each its own tags.
    assert set(one.tags) == set(two.tags) and "melt_pressure" in one.tags
    assert one.explain.catalogue.modes and not two.explain.catalogue.modes
    # Each line of this form has its own model store; the agent's journal and server are one.
    assert one.model_store == config.state_dir / "lines" / "extruder-1"
    assert two.model_store == config.state_dir / "lines" / "extruder-2"
    assert one.journal_path == two.journal_path == config.journal_path
    assert one.opcua == two.opcua == config.opcua


def test_a_one_line_site_is_its_own_only_view() -> None:
    config = load_config(SITE)
    assert config.lines == () and config.line_names == ["extruder-1"]
    assert config.line_views() == [config]
    assert config.model_store == config.state_dir  # as before [[line]] existed


def test_each_line_has_its_own_detection(tmp_path: Path) -> None:
    path = two_line_site(
        tmp_path,
        line_table("a", "plc-a", 5020, "[line.detection]\nraise_after = 7\n"),
        line_table("b", "plc-b", 5021),
    )
    a, b = load_config(path).line_views()
    assert (a.detection.raise_after, b.detection.raise_after) == (7, 3)


def test_mixing_both_forms_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = two_line_site(
        tmp_path,
        line_table("a", "plc-a", 5020),
        top='[model]\nbundle = "b"\n',
    )
    error = error_of(path)
    assert error.field == "model"
    assert "[[line]]" in error.problem and "[line.model]" in error.fix
    assert "one-line form" in error.fix


def test_a_duplicate_line_name_names_the_second_line(tmp_path: Path) -> None:
    path = two_line_site(tmp_path, line_table("a", "plc-a", 5020), line_table("a", "plc-b", 5021))
    error = error_of(path)
    assert error.field == "line[1].name"
    assert "also the name of line[0]" in error.problem


def test_a_line_name_that_cannot_be_a_node_id_is_refused(tmp_path: Path) -> None:
    path = two_line_site(tmp_path, line_table("a/b", "plc-a", 5020))
    error = error_of(path)
    assert error.field == "line[0].name" and "letters, digits" in error.fix


def test_a_plc_belongs_to_one_line(tmp_path: Path) -> None:
    by_name = two_line_site(
        tmp_path, line_table("a", "plc-a", 5020), line_table("b", "plc-a", 5021)
    )
    error = error_of(by_name)
    assert error.field == "line[1].plc[0].name" and "also a PLC of line[0]" in error.problem
    by_endpoint = two_line_site(
        tmp_path, line_table("a", "plc-a", 5020), line_table("b", "plc-b", 5020)
    )
    error = error_of(by_endpoint)
    assert error.field == "line[1].plc[0]"
    assert "127.0.0.1:5020 unit 1 is also read by line[0].plc[0]" in error.problem


def test_errors_of_two_lines_name_their_field_each(tmp_path: Path) -> None:
    bad_port = line_table("b", "plc-b", 70000)
    bad_detection = line_table("a", "plc-a", 5020, "[line.detection]\nspc_hits = 0\n")
    path = two_line_site(tmp_path, bad_detection, bad_port)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    fields = {e.field for e in info.value.errors}
    assert fields == {"line[0].detection.spc_hits", "line[1].plc[0].port"}, fields


def test_a_tag_defined_twice_in_one_line_names_that_line(tmp_path: Path) -> None:
    second_plc = line_table("_", "plc-c", 5022).split('name = "_"\n')[1]  # its [[line.plc]]
    path = two_line_site(
        tmp_path, line_table("a", "plc-a", 5020), line_table("b", "plc-b", 5021) + second_plc
    )
    error = error_of(path)
    assert error.field == "line[1].plc[1]" and "also defined by plc-b" in error.problem


def test_an_unknown_key_in_a_line_is_named(tmp_path: Path) -> None:
    path = two_line_site(tmp_path, line_table("a", "plc-a", 5020, 'modle = "x"\n'))
    error = error_of(path)
    assert error.field == "line[0].modle" and "model" in error.fix


def test_a_line_catalogue_must_name_that_lines_tags(tmp_path: Path) -> None:
    explain = '[line.explain]\ncatalogue = "demo-extruder"\n'
    (tmp_path / "other.toml").write_text(
        TAG_MAP.read_text().replace('name = "melt_pressure"', 'name = "die_pressure"')
    )
    other = line_table("b", "plc-b", 5021, explain).replace('"map.toml"', '"other.toml"')
    path = two_line_site(tmp_path, line_table("a", "plc-a", 5020, explain), other)
    error = error_of(path)
    assert error.field == "line[1].explain.catalogue"
    assert "'melt_pressure' is not a tag of the line" in error.problem


def test_reload_names_the_line_of_a_change(tmp_path: Path) -> None:
    old = load_config(
        two_line_site(tmp_path, line_table("a", "plc-a", 5020), line_table("b", "plc-b", 5021))
    )
    new = load_config(
        two_line_site(
            tmp_path,
            line_table("a", "plc-a", 5020),
            line_table("b", "plc-b", 5022, "[line.detection]\nclear_after = 4\n"),
        )
    )
    plan = plan_reload(old, new)
    assert plan.apply == ("line[1].detection.clear_after",)
    assert plan.restart == ("line[1].plc[0].port",)


def test_with_bundle_gives_one_line_its_first_model(tmp_path: Path) -> None:
    config = load_config(
        two_line_site(tmp_path, line_table("a", "plc-a", 5020), line_table("b", "plc-b", 5021))
    )
    moved = config.with_bundle("b", tmp_path / "bundle")
    assert [v.bundle for v in moved.line_views()] == [None, tmp_path / "bundle"]
    with pytest.raises(KeyError):
        config.line_view("c")


def test_no_line_at_all_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("line = []\n[opcua]\nallow_anonymous = true\n")
    error = error_of(path)
    assert error.field == "line" and "[[line]]" in error.fix
