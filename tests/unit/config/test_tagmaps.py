"""Every validation rule of tag maps, node maps and the site loader, with the exact field path."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from agent.config import default_inter_frame_s, load_config, load_node_map, load_tag_map
from agent.core.codec import DataType
from agent.errors import ConfigError

# --- writing small config files ---------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the ASCII used here
    return repr(value)


def _tables(header: str, tables: Iterable[dict[str, Any]]) -> str:
    out = []
    for table in tables:
        out.append(f"[[{header}]]")
        out.extend(f"{key} = {_value(value)}" for key, value in table.items())
        out.append("")
    return "\n".join(out)


def write_map(path: Path, *tags: dict[str, Any], head: str = "") -> Path:
    path.write_text(head + "\n" + _tables("tag", tags))
    return path


def map_error(tmp_path: Path, *tags: dict[str, Any], head: str = "") -> ConfigError:
    path = write_map(tmp_path / "map.toml", *tags, head=head)
    with pytest.raises(ConfigError) as info:
        load_tag_map(path)
    return info.value


def node_error(tmp_path: Path, *tags: dict[str, Any], head: str = "") -> ConfigError:
    path = write_map(tmp_path / "nodes.toml", *tags, head=head)
    with pytest.raises(ConfigError) as info:
        load_node_map(path)
    return info.value


def f32(name: str, address: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "type": "float32", **extra}


def i16(name: str, address: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "type": "int16", **extra}


def flag(name: str, address: int, bit: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "type": "bool", "bit": bit, **extra}


# --- tag maps: what is accepted ---------------------------------------------------------------


def test_a_valid_map_loads_with_every_table_and_type(tmp_path: Path) -> None:
    path = write_map(
        tmp_path / "map.toml",
        f32("speed", 0, order="cdab", scale=2.0, offset=-1.0, unit="rpm"),
        {"name": "count", "address": 2, "type": "uint64", "order": "GHEFCDAB"},
        {"name": "label", "address": 6, "type": "string", "length": 5, "order": "BA"},
        flag("run", 9, 0),
        flag("fault", 9, 15),  # two bits of one register: fine
        {"name": "temp", "table": "input", "address": 0, "type": "int16", "scale": 0.1},
        flag("ready", 0, 0, table="input"),  # same register number, other table: fine
        {"name": "motor", "table": "coil", "address": 0},  # type defaults to bool
        {"name": "door", "table": "discrete", "address": 0, "type": "bool"},
        head='[device]\nvendor = "ACME"\nmodel = "X1"\n',
    )
    tag_map = load_tag_map(path)
    by_name = {t.name: t for t in tag_map.tags}
    assert (tag_map.vendor, tag_map.model) == ("ACME", "X1")
    assert by_name["speed"].layout.word_swap and not by_name["speed"].layout.byte_swap
    assert by_name["label"].span == 3
    assert by_name["motor"].dtype is DataType.BOOL and by_name["motor"].is_bit_table
    assert by_name["fault"].bit == 15


def test_the_longest_string_fits_one_read(tmp_path: Path) -> None:
    path = write_map(tmp_path / "m.toml", {"name": "s", "address": 0, "type": "string",
                                           "length": 250})  # fmt: skip
    assert load_tag_map(path).tags[0].span == 125


# --- tag maps: what is refused, and where -----------------------------------------------------


def test_unknown_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    error = map_error(tmp_path, i16("a", 0), i16("b", 1), i16("c", 2, scael=0.1))
    assert error.field == "tag[2].scael"
    assert "not a known setting" in error.problem
    assert error.fix == "known: scale"


def test_unknown_top_level_table_is_refused(tmp_path: Path) -> None:
    error = map_error(tmp_path, i16("a", 0), head='[devices]\nvendor = "x"\n')
    assert error.field == "devices"
    assert "device" in error.fix


def test_unknown_type_lists_the_known_ones(tmp_path: Path) -> None:
    error = map_error(tmp_path, {"name": "a", "address": 0, "type": "flaot32"})
    assert error.field == "tag[0].type"
    assert "flaot32" in error.problem and "float32" in error.problem


def test_register_table_tag_needs_a_type(tmp_path: Path) -> None:
    error = map_error(tmp_path, {"name": "a", "address": 0})
    assert error.field == "tag[0].type"
    assert "required" in error.problem


@pytest.mark.parametrize("length", [0, 251, 1000])
def test_string_longer_than_one_read_is_refused(tmp_path: Path, length: int) -> None:
    error = map_error(tmp_path, i16("a", 0),
                      {"name": "s", "address": 1, "type": "string", "length": length})  # fmt: skip
    assert error.field == "tag[1].length"
    assert "outside 1..250" in error.problem


def test_string_needs_a_length(tmp_path: Path) -> None:
    error = map_error(tmp_path, {"name": "s", "address": 0, "type": "string"})
    assert error.field == "tag[0].length"
    assert "required" in error.problem


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    error = map_error(tmp_path, i16("speed", 0), i16("speed", 1))
    assert error.field == "tag[1].name"
    assert "duplicate tag name 'speed' (also tag[0])" in error.problem


@pytest.mark.parametrize("name", ["1st", "motor-current", "a b", ""])
def test_names_must_be_plain_identifiers(tmp_path: Path, name: str) -> None:
    error = map_error(tmp_path, i16(name, 0))
    assert error.field == "tag[0].name"


@pytest.mark.parametrize(
    ("first", "second", "clash"),
    [
        (f32("a", 0), i16("b", 1), 1),  # second half of a float32
        ({"name": "a", "address": 10, "type": "float64"}, i16("b", 13), 13),  # last of four
        ({"name": "a", "address": 4, "type": "string", "length": 5}, f32("b", 6), 6),
        (i16("a", 7), f32("b", 6), 7),  # the later tag starts below and runs into the earlier
    ],
)
def test_overlapping_registers_are_refused(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any], clash: int
) -> None:
    error = map_error(tmp_path, first, second)
    assert error.field == "tag[1].address"
    assert f"holding {clash} is already used by a" in error.problem


def test_adjacent_registers_and_other_tables_do_not_overlap(tmp_path: Path) -> None:
    path = write_map(
        tmp_path / "m.toml",
        {"name": "a", "address": 10, "type": "float64"},
        i16("b", 14),
        f32("c", 10, table="input"),
        {"name": "d", "table": "coil", "address": 10},
        {"name": "e", "table": "discrete", "address": 10},
    )
    assert len(load_tag_map(path).tags) == 5


def test_two_bools_on_the_same_bit_are_refused(tmp_path: Path) -> None:
    error = map_error(tmp_path, flag("run", 5, 3), flag("fault", 5, 4), flag("again", 5, 3))
    assert error.field == "tag[2].bit"
    assert "bit 3 of register 5 is already run" in error.problem


@pytest.mark.parametrize("table", ["coil", "discrete"])
@pytest.mark.parametrize("dtype", ["int16", "float32", "string"])
def test_bit_tables_hold_only_bools(tmp_path: Path, table: str, dtype: str) -> None:
    error = map_error(tmp_path, {"name": "a", "table": table, "address": 0, "type": dtype})
    assert error.field == "tag[0].type"
    assert f"a {table} holds one bit: its type is bool, not {dtype}" in error.problem


def test_bool_in_a_register_needs_its_bit(tmp_path: Path) -> None:
    error = map_error(tmp_path, {"name": "a", "address": 0, "type": "bool"})
    assert error.field == "tag[0].bit"
    assert "needs its bit" in error.problem


@pytest.mark.parametrize("bit", [-1, 16])
def test_bit_must_be_inside_the_register(tmp_path: Path, bit: int) -> None:
    error = map_error(tmp_path, flag("a", 0, bit))
    assert error.field == "tag[0].bit"
    assert "outside 0..15" in error.problem


@pytest.mark.parametrize(
    "tag",
    [
        i16("a", 0, bit=3),
        f32("a", 0, bit=0),
        {"name": "a", "table": "coil", "address": 0, "bit": 0},
    ],
)
def test_bit_on_anything_but_a_register_bool_is_refused(
    tmp_path: Path, tag: dict[str, Any]
) -> None:
    error = map_error(tmp_path, tag)
    assert error.field == "tag[0].bit"
    assert "only a bool in a holding/input register has a bit" in error.problem


@pytest.mark.parametrize("tag", [i16("a", 0, length=2), flag("a", 0, 0, length=1)])
def test_length_on_a_non_string_is_refused(tmp_path: Path, tag: dict[str, Any]) -> None:
    error = map_error(tmp_path, tag)
    assert error.field == "tag[0].length"
    assert "only a string has a length" in error.problem


@pytest.mark.parametrize(
    ("dtype", "order", "allowed"),
    [
        ("int16", "ABCD", "AB, BA"),
        ("uint16", "CDAB", "AB, BA"),
        ("float32", "AB", "ABCD, CDAB, BADC, DCBA"),
        ("int32", "ABCDEFGH", "ABCD, CDAB, BADC, DCBA"),
        ("float64", "CDAB", "ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA"),
        ("uint64", "DCBA", "ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA"),
        ("string", "ABCD", "AB, BA"),
        ("float32", "big", "ABCD, CDAB, BADC, DCBA"),
    ],
)
def test_order_must_fit_the_width(tmp_path: Path, dtype: str, order: str, allowed: str) -> None:
    tag = {"name": "a", "address": 0, "type": dtype, "order": order}
    if dtype == "string":
        tag["length"] = 4
    error = map_error(tmp_path, tag)
    assert error.field == "tag[0].order"
    assert f"does not fit {dtype}" in error.problem and allowed in error.problem


def test_bool_has_no_byte_order(tmp_path: Path) -> None:
    error = map_error(tmp_path, flag("a", 0, 0, order="AB"))
    assert error.field == "tag[0].order"
    assert "a bool has no byte order" in error.problem


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        (i16("a", -1), "outside 0..65535"),
        (i16("a", 65536), "outside 0..65535"),
        (f32("a", 65535), "runs past address 65535"),
        ({"name": "a", "address": 65534, "type": "string", "length": 6}, "runs past"),
    ],
)
def test_address_must_fit_the_table(tmp_path: Path, tag: dict[str, Any], problem: str) -> None:
    error = map_error(tmp_path, tag)
    assert error.field == "tag[0].address"
    assert problem in error.problem


def test_last_register_is_usable(tmp_path: Path) -> None:
    assert load_tag_map(write_map(tmp_path / "m.toml", i16("a", 65535))).tags[0].address == 65535


def test_scale_zero_is_refused(tmp_path: Path) -> None:
    error = map_error(tmp_path, i16("a", 0, scale=0))
    assert error.field == "tag[0].scale"


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    error = map_error(tmp_path, i16("a", 0, table="holdings"))
    assert error.field == "tag[0].table"
    assert "holding, input, coil, discrete" in error.problem


def test_wrong_value_type_says_what_was_given(tmp_path: Path) -> None:
    error = map_error(tmp_path, {"name": "a", "address": "5", "type": "int16"})
    assert error.field == "tag[0].address"
    assert "must be a int, got str '5'" in error.problem


def test_map_without_tags_is_refused(tmp_path: Path) -> None:
    error = map_error(tmp_path, head='[device]\nvendor = "x"\n')
    assert error.field == "tag"
    assert "at least one" in error.problem


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[[tag]\nname = ")
    with pytest.raises(ConfigError) as info:
        load_tag_map(path)
    assert info.value.field == "file"
    assert "not valid TOML" in info.value.problem


# --- node maps --------------------------------------------------------------------------------


def node(name: str, node_id: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "node_id": node_id, **extra}


def test_a_valid_node_map_loads(tmp_path: Path) -> None:
    path = write_map(
        tmp_path / "n.toml",
        node("a", "ns=2;s=Channel1.Device1.Tag1", unit="degC", deadband=0.5, scale=0.1),
        node("b", "i=2258"),
        node("c", "ns=1;i=1001"),
        node("d", "nsu=urn:acme:line;s=Oven.Zone1"),
        node("e", "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a"),
        node("f", "ns=1;b=M/RbKBsRVkePCePcx24oRA=="),
        node("g", "s=Plain"),
        head='[server]\nvendor = "Kepware"\n',
    )
    node_map = load_node_map(path)
    assert node_map.vendor == "Kepware"
    assert [t.name for t in node_map.tags] == list("abcdefg")
    assert node_map.tags[0].deadband == 0.5


@pytest.mark.parametrize("node_id", ["Channel1.Device1.Tag1", "2258", "opc.tcp://x", ""])
def test_node_id_must_be_an_opcua_node_id(tmp_path: Path, node_id: str) -> None:
    error = node_error(tmp_path, node("a", "ns=2;s=A"), node("b", node_id))
    assert error.field == "tag[1].node_id"
    assert "is not an OPC-UA node id" in error.problem
    assert "ns=2;s=" in error.fix


@pytest.mark.parametrize(
    "node_id",
    [
        "ns=2;Channel1.Device1.Tag1",  # the "s=" forgotten: a common Kepware copy-paste slip
        "ns=2",  # namespace without an identifier
        "ns=two;s=Tag",  # namespace index not a number
        "ns=2;i=abc",  # numeric identifier that is not a number
        "ns=2;x=Tag",  # unknown identifier type
        "s=",  # empty identifier
        "i=",
    ],
)
def test_malformed_node_ids_are_refused(tmp_path: Path, node_id: str) -> None:
    # The NodeId string form of OPC 10000-6: [ns=<index>;|nsu=<uri>;]<i|s|g|b>=<identifier>.
    error = node_error(tmp_path, node("a", node_id))
    assert error.field == "tag[0].node_id"


def test_duplicate_node_ids_are_refused(tmp_path: Path) -> None:
    error = node_error(tmp_path, node("a", "ns=2;s=X"), node("b", "ns=2;s=Y"),
                       node("c", "ns=2;s=X"))  # fmt: skip
    assert error.field == "tag[2].node_id"
    assert "ns=2;s=X is already mapped to a" in error.problem


def test_duplicate_node_names_are_refused(tmp_path: Path) -> None:
    error = node_error(tmp_path, node("a", "ns=2;s=X"), node("a", "ns=2;s=Y"))
    assert error.field == "tag[1].name"


def test_unknown_node_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    error = node_error(tmp_path, {"name": "a", "nodeid": "ns=2;s=X"})
    assert error.field == "tag[0].nodeid"
    assert error.fix == "known: node_id"


def test_negative_deadband_is_refused(tmp_path: Path) -> None:
    error = node_error(tmp_path, node("a", "ns=2;s=X", deadband=-0.1))
    assert error.field == "tag[0].deadband"


def test_node_map_refuses_a_device_table(tmp_path: Path) -> None:
    error = node_error(tmp_path, node("a", "ns=2;s=X"), head='[device]\nvendor = "x"\n')
    assert error.field == "device"


# --- site configs -----------------------------------------------------------------------------

HEAD = """
[line]
name = "test-line"

[model]
bundle = "no-bundle"

[opcua]
security = "none"
allow_anonymous = true
"""

TCP = """
[[plc]]
name = "press"
protocol = "modbus-tcp"
host = "127.0.0.1"
unit = 1
poll_interval_s = 1.0
timeout_s = 0.5
tag_map = "press.toml"
"""

RTU_PORT = """
[[plc]]
name = "bus"
protocol = "modbus-rtu"
timeout_s = 0.4

[plc.serial]
port = "/dev/ttyUSB0"
baudrate = 9600
parity = "E"
"""

METER = """
[[plc.device]]
name = "meter"
unit = 1
poll_interval_s = 2.0
tag_map = "meter.toml"
"""

SENSOR = """
[[plc.device]]
name = "sensor"
unit = 2
poll_interval_s = 1.0
tag_map = "sensor.toml"
"""

RTU = RTU_PORT + METER + SENSOR

OPCUA = """
[[plc]]
name = "scada"
protocol = "opcua"
endpoint = "opc.tcp://127.0.0.1:49320"
poll_interval_s = 1.0
timeout_s = 0.5
node_map = "nodes.toml"
"""


def write_site(tmp_path: Path, *plcs: str, head: str = HEAD) -> Path:
    """A site of the given [[plc]] blocks (default: TCP, RTU, OPC-UA) with its maps beside it."""
    write_map(tmp_path / "press.toml", f32("press_force", 0), i16("press_count", 2))
    write_map(tmp_path / "meter.toml", f32("meter_power", 0, table="input"))
    write_map(tmp_path / "sensor.toml", i16("sensor_vibration", 5200))
    write_map(tmp_path / "nodes.toml", node("scada_temp", "ns=2;s=Line.Oven.Temp"))
    path = tmp_path / "site.toml"
    path.write_text(head + "".join(plcs or (TCP, RTU, OPCUA)))
    return path


def site_error(tmp_path: Path, *plcs: str, head: str = HEAD) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write_site(tmp_path, *plcs, head=head))
    return info.value


def edit(block: str, old: str, new: str) -> str:
    assert old in block, old
    return block.replace(old, new, 1)


def test_the_test_site_is_valid(tmp_path: Path) -> None:
    config = load_config(write_site(tmp_path))
    assert [p.protocol for p in config.plcs] == ["modbus-tcp", "modbus-rtu", "opcua"]
    bus = config.plcs[1]
    assert bus.serial is not None and bus.serial.stopbits == 1  # parity E: one stop bit
    assert bus.serial.inter_frame_s == pytest.approx(3.5 * 11 / 9600)
    assert [d.unit for d in bus.devices] == [1, 2]
    assert set(config.tags) == {
        "press_force", "press_count", "meter_power", "sensor_vibration", "scada_temp",
    }  # fmt: skip


def test_inter_frame_default_is_three_and_a_half_characters() -> None:
    assert default_inter_frame_s(9600, "E", 8, 1) == pytest.approx(3.5 * 11 / 9600)
    assert default_inter_frame_s(19200, "N", 8, 2) == pytest.approx(3.5 * 11 / 19200)
    assert default_inter_frame_s(9600, "N", 7, 1) == pytest.approx(3.5 * 9 / 9600)
    assert default_inter_frame_s(38400, "E", 8, 1) == 0.00175  # fixed above 19200 baud
    assert default_inter_frame_s(115200, "N", 8, 1) == 0.00175


@pytest.mark.parametrize(
    ("section", "typo", "known"),
    [
        ("line", "nmae", "name"),
        ("model", "bundel", "bundle"),
        ("detection", "raise_afer", "raise_after"),
        ("opcua", "allow_anonymus", "allow_anonymous"),
        ("journal", "pth", "path"),
    ],
)
def test_unknown_keys_of_the_site_sections_are_refused(
    tmp_path: Path, section: str, typo: str, known: str
) -> None:
    # A typo in [detection] must not silently leave the default in force (module docstring).
    head = HEAD + '\n[detection]\nraise_after = 3\n\n[journal]\npath = "j.sqlite"\n'
    head = edit(head, f"[{section}]\n", f"[{section}]\n{typo} = 1\n")
    error = site_error(tmp_path, TCP, head=head)
    assert error.field == f"{section}.{typo}"
    assert "not a known setting" in error.problem
    assert known in error.fix


@pytest.mark.parametrize("baudrate", [12345, 0, 250000])
def test_serial_baudrate_must_be_standard(tmp_path: Path, baudrate: int) -> None:
    error = site_error(tmp_path, TCP, edit(RTU, "baudrate = 9600", f"baudrate = {baudrate}"))
    assert error.field == "plc[1].serial.baudrate"
    assert f"{baudrate} is not a standard rate" in error.problem
    assert "19200" in error.fix


@pytest.mark.parametrize("parity", ["X", "even", "n"])
def test_serial_parity_is_n_e_or_o(tmp_path: Path, parity: str) -> None:
    error = site_error(tmp_path, TCP, edit(RTU, 'parity = "E"', f'parity = "{parity}"'))
    assert error.field == "plc[1].serial.parity"


@pytest.mark.parametrize(("key", "value"), [("bytesize", 9), ("bytesize", 6), ("stopbits", 3)])
def test_serial_framing_is_checked(tmp_path: Path, key: str, value: int) -> None:
    error = site_error(tmp_path, TCP, edit(RTU, 'parity = "E"', f'parity = "E"\n{key} = {value}'))
    assert error.field == f"plc[1].serial.{key}"


def test_inter_frame_below_three_and_a_half_characters_is_refused(tmp_path: Path) -> None:
    # 9600 baud, 8E1: 11 bits a character, 3.5 characters = 4.01 ms
    error = site_error(
        tmp_path, TCP, edit(RTU, 'parity = "E"', 'parity = "E"\ninter_frame_s = 0.002')
    )
    assert error.field == "plc[1].serial.inter_frame_s"
    assert "shorter than 3.5 characters (0.00401 s)" in error.problem


def test_inter_frame_above_19200_baud_is_at_least_1_75_ms(tmp_path: Path) -> None:
    fast = edit(RTU, "baudrate = 9600", "baudrate = 38400")
    error = site_error(
        tmp_path, TCP, edit(fast, 'parity = "E"', 'parity = "E"\ninter_frame_s = 0.001')
    )
    assert error.field == "plc[1].serial.inter_frame_s"
    ok = edit(fast, 'parity = "E"', 'parity = "E"\ninter_frame_s = 0.00175')
    assert load_config(write_site(tmp_path, TCP, ok))


def test_unknown_serial_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    error = site_error(tmp_path, TCP, edit(RTU, "baudrate = 9600", "baud = 9600"))
    assert error.field == "plc[1].serial.baud"
    assert error.fix == "known: baudrate"


def test_rtu_needs_its_serial_table(tmp_path: Path) -> None:
    no_serial = RTU_PORT[: RTU_PORT.index("[plc.serial]")] + METER + SENSOR
    error = site_error(tmp_path, TCP, no_serial)
    assert error.field == "plc[1].serial"


def test_two_connections_on_one_serial_port_are_refused(tmp_path: Path) -> None:
    second = RTU_PORT.replace('name = "bus"', 'name = "bus-2"') + SENSOR
    error = site_error(tmp_path, TCP, RTU_PORT + METER, second)
    assert error.field == "plc[2].serial.port"
    assert "/dev/ttyUSB0 is also used by bus" in error.problem
    assert "[[plc.device]]" in error.fix


def test_duplicate_unit_ids_on_one_connection_are_refused(tmp_path: Path) -> None:
    error = site_error(tmp_path, TCP, edit(RTU, "unit = 2", "unit = 1"))
    assert error.field == "plc[1].device[1].unit"
    assert "unit 1 is also meter" in error.problem


def test_same_unit_id_on_different_connections_is_fine(tmp_path: Path) -> None:
    # press (TCP) and meter (RTU) are both unit 1
    assert len(load_config(write_site(tmp_path)).plcs) == 3


@pytest.mark.parametrize("unit", [-1, 248])
def test_unit_id_range(tmp_path: Path, unit: int) -> None:
    error = site_error(tmp_path, TCP, edit(RTU, "unit = 2", f"unit = {unit}"))
    assert error.field == "plc[1].device[1].unit"
    assert "outside 0..247" in error.problem


def test_broadcast_unit_zero_is_refused_on_a_serial_bus(tmp_path: Path) -> None:
    # Modbus over serial line, 2.2: address 0 is broadcast and no slave ever answers it (Siemens'
    # MB_MASTER help likewise: 0 is reserved for broadcast, writes only), so a device polled at
    # unit 0 on RTU can only time out.
    error = site_error(tmp_path, TCP, edit(RTU, "unit = 2", "unit = 0"))
    assert error.field == "plc[1].device[1].unit"


@pytest.mark.parametrize("poll", ["0.4", "0.3"])
def test_timeout_must_be_shorter_than_every_device_poll(tmp_path: Path, poll: str) -> None:
    error = site_error(
        tmp_path, TCP, edit(RTU, "poll_interval_s = 1.0", f"poll_interval_s = {poll}")
    )
    assert error.field == "plc[1].device[1].poll_interval_s"
    assert "timeout_s 0.4 s" in error.problem
    assert "next poll" in error.fix


def test_timeout_must_be_shorter_than_the_poll_of_a_single_device(tmp_path: Path) -> None:
    error = site_error(tmp_path, edit(TCP, "timeout_s = 0.5", "timeout_s = 1.0"))
    assert error.field == "plc[0].poll_interval_s"


def test_unit_and_tag_map_belong_in_the_devices_when_devices_are_listed(tmp_path: Path) -> None:
    error = site_error(tmp_path, TCP, edit(RTU, "timeout_s = 0.4", "timeout_s = 0.4\nunit = 5"))
    assert error.field == "plc[1].unit"
    assert "[[plc.device]]" in error.problem


def test_unknown_device_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    error = site_error(tmp_path, TCP, edit(RTU, "poll_interval_s = 2.0", "poll_intervall = 2.0"))
    assert error.field == "plc[1].device[0].poll_intervall"
    assert error.fix == "known: poll_interval_s"


def test_tag_map_errors_are_reported_under_the_tag_map_field(tmp_path: Path) -> None:
    path = write_site(tmp_path, TCP, RTU)
    write_map(tmp_path / "sensor.toml", i16("sensor_a", 0), flag("sensor_b", 0, 16))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "plc[1].device[1].tag_map"
    assert "tag[1].bit" in info.value.problem
    assert info.value.source.endswith("sensor.toml")


def test_tag_span_must_fit_the_device_read_limit(tmp_path: Path) -> None:
    # A float32 cannot be read in requests of one register: the loader must say so, not the
    # poller at start-up (blocks.plan_blocks raises a bare ValueError there).
    limited = edit(RTU, 'tag_map = "meter.toml"', 'tag_map = "meter.toml"\nmax_registers = 1')
    error = site_error(tmp_path, TCP, limited)
    assert error.field in ("plc[1].device[0].max_registers", "plc[1].device[0].tag_map")
    assert "meter_power" in str(error)


def test_tag_names_must_be_unique_across_the_line(tmp_path: Path) -> None:
    path = write_site(tmp_path)
    write_map(tmp_path / "sensor.toml", i16("press_force", 0))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "plc[1]"
    assert "'press_force' is also defined by press" in info.value.problem


def test_unknown_protocol_is_refused(tmp_path: Path) -> None:
    error = site_error(tmp_path, edit(TCP, "modbus-tcp", "modbus-udp"))
    assert error.field == "plc[0].protocol"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ('security_policy = "None"\nsecurity_mode = "Sign"', "plc[2].security_mode"),
        ('security_policy = "None"\nsecurity_mode = "SignAndEncrypt"', "plc[2].security_mode"),
        ('security_policy = "Basic256Sha256"\nsecurity_mode = "None"', "plc[2].security_mode"),
        ('security_policy = "Basic128Rsa15"', "plc[2].security_policy"),
        ('security_mode = "Encrypt"', "plc[2].security_mode"),
    ],
)
def test_opcua_security_mode_must_fit_the_policy(tmp_path: Path, settings: str, field: str) -> None:
    error = site_error(tmp_path, TCP, RTU, OPCUA + settings + "\n")
    assert error.field == field


def test_opcua_security_needs_a_certificate(tmp_path: Path) -> None:
    settings = 'security_policy = "Basic256Sha256"\nsecurity_mode = "SignAndEncrypt"\n'
    error = site_error(tmp_path, TCP, RTU, OPCUA + settings)
    assert error.field == "plc[2].certificate"
    assert "needs a client certificate and private_key" in error.problem


def test_opcua_certificate_must_exist(tmp_path: Path) -> None:
    (tmp_path / "client.der").write_bytes(b"x")
    settings = (
        'security_policy = "Basic256Sha256"\nsecurity_mode = "Sign"\n'
        'certificate = "client.der"\nprivate_key = "missing.pem"\n'
    )
    error = site_error(tmp_path, TCP, RTU, OPCUA + settings)
    assert error.field == "plc[2].private_key"
    assert "does not exist" in error.problem


@pytest.mark.parametrize("settings", ['username = "lineside"', 'password_file = "secret.txt"'])
def test_opcua_username_and_password_file_go_together(tmp_path: Path, settings: str) -> None:
    error = site_error(tmp_path, TCP, RTU, OPCUA + settings + "\n")
    assert error.field == "plc[2].username"
    assert "username and password_file go together" in error.problem


def test_opcua_timeout_must_be_shorter_than_the_poll(tmp_path: Path) -> None:
    error = site_error(tmp_path, TCP, RTU, edit(OPCUA, "timeout_s = 0.5", "timeout_s = 1.0"))
    assert error.field == "plc[2].timeout_s"


def test_opcua_mode_is_subscription_or_poll(tmp_path: Path) -> None:
    error = site_error(tmp_path, TCP, RTU, OPCUA + 'mode = "push"\n')
    assert error.field == "plc[2].mode"


def test_node_map_errors_are_reported_under_the_node_map_field(tmp_path: Path) -> None:
    path = write_site(tmp_path)
    write_map(tmp_path / "nodes.toml", node("scada_a", "ns=2;s=A"), node("scada_b", "Line.B"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "plc[2].node_map"
    assert "tag[1].node_id" in info.value.problem
