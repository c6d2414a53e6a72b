"""Modbus RTU framing: CRC, requests, and every way an answer can fail to be *the* answer."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import SerialSettings
from agent.sources import rtu, rtu_framing
from agent.sources.rtu_framing import (
    build_read_request,
    crc16,
    expected_length,
    parse_read_response,
)
from agent.sources.transport import ExceptionReply, LinkError


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def _table_crc16(data: bytes) -> int:
    """An independent CRC-16/MODBUS: the byte-table form, table built from the polynomial."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def encode_answer(unit: int, function: int, values: list[int] | list[bool]) -> bytes:
    """A slave's normal answer, written out from the spec (not through the parser)."""
    if function in (3, 4):
        data = b"".join(int(v).to_bytes(2, "big") for v in values)
    else:
        data = bytes(
            sum(1 << i for i, bit in enumerate(values[k : k + 8]) if bit)
            for k in range(0, len(values), 8)
        )
    body = bytes([unit, function, len(data)]) + data
    return body + _table_crc16(body).to_bytes(2, "little")


def with_crc(body: bytes) -> bytes:
    return body + _table_crc16(body).to_bytes(2, "little")


# --- CRC and requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "crc_on_the_wire"),
    [
        # the CRC-16/MODBUS check value of the CRC catalogue: 0x4B37, low byte first
        (b"123456789", "37 4b"),
        # Modbus over serial line / simplymodbus.ca worked examples
        ("01 03 00 00 00 0a", "c5 cd"),
        ("11 03 00 6b 00 03", "76 87"),
        ("11 03 06 ae 41 56 52 43 40", "49 ad"),
        ("11 01 00 13 00 25", "0e 84"),
        ("11 01 05 cd 6b b2 0e 1b", "45 e6"),
        (b"", "ff ff"),
    ],
)
def test_crc_matches_published_vectors(data: bytes | str, crc_on_the_wire: str) -> None:
    raw = bytes.fromhex(data) if isinstance(data, str) else data
    assert crc16(raw).to_bytes(2, "little") == bytes.fromhex(crc_on_the_wire)


@given(st.binary(max_size=300))
def test_crc_agrees_with_the_table_form_and_leaves_zero_residue(data: bytes) -> None:
    assert crc16(data) == _table_crc16(data)
    # a frame with its CRC appended checks to zero: the receiver's classic test
    assert crc16(data + crc16(data).to_bytes(2, "little")) == 0


def test_request_frames_are_byte_exact() -> None:
    assert build_read_request(1, 3, 0, 10) == bytes.fromhex("01 03 00 00 00 0a c5 cd")
    assert build_read_request(0x11, 3, 0x6B, 3) == bytes.fromhex("11 03 00 6b 00 03 76 87")
    assert build_read_request(0x11, 1, 0x13, 0x25) == bytes.fromhex("11 01 00 13 00 25 0e 84")
    assert build_read_request(247, 4, 0xFFFF, 1)[:6] == bytes.fromhex("f7 04 ff ff 00 01")


@pytest.mark.parametrize(
    ("unit", "function", "start", "count"),
    [
        (1, 5, 0, 1),  # a write, not a read
        (1, 3, 0, 0),
        (1, 3, 0, 126),  # over the 125 registers a read may ask for
        (1, 1, 0, 2001),  # over the 2000 bits
        (1, 3, 65535, 2),  # runs past the address space
        (256, 3, 0, 1),
        (1, 3, -1, 1),
    ],
)
def test_request_refuses_what_the_protocol_cannot_carry(
    unit: int, function: int, start: int, count: int
) -> None:
    with pytest.raises(ValueError):
        build_read_request(unit, function, start, count)


@pytest.mark.parametrize(
    ("function", "count", "length"),
    [(3, 10, 25), (4, 125, 255), (3, 1, 7), (1, 1, 6), (1, 8, 6), (1, 9, 7), (2, 2000, 255)],
)
def test_expected_length(function: int, count: int, length: int) -> None:
    assert expected_length(function, count) == length


# --- answers --------------------------------------------------------------------------------


def test_parses_the_spec_register_answer() -> None:
    frame = bytes.fromhex("11 03 06 ae 41 56 52 43 40 49 ad")
    assert parse_read_response(frame, 0x11, 3, 3) == [0xAE41, 0x5652, 0x4340]


def test_parses_the_spec_coil_answer_and_cuts_the_padding() -> None:
    # coils 20..56 of slave 17: CD 6B B2 0E 1B, least significant bit first
    frame = bytes.fromhex("11 01 05 cd 6b b2 0e 1b 45 e6")
    bits = parse_read_response(frame, 0x11, 1, 37)
    assert len(bits) == 37
    packed = bytes.fromhex("cd 6b b2 0e 1b")
    assert bits == [bool(packed[i // 8] >> (i % 8) & 1) for i in range(37)]
    assert bits[:8] == [True, False, True, True, False, False, True, True]  # 0xCD


def test_exception_frame_raises_exception_reply_with_its_code() -> None:
    frame = with_crc(bytes.fromhex("02 84 02"))
    with pytest.raises(ExceptionReply) as caught:
        parse_read_response(frame, 2, 4, 10, start=100)
    assert caught.value.code == 2
    assert str(caught.value) == (
        "PLC answered exception 2 (illegal data address) to unit 2 input 100+10"
    )


GOOD = encode_answer(2, 3, list(range(10)))  # unit 2, 10 holding registers


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (encode_answer(1, 3, list(range(10))), "unit 2 holding 0+10: answer from unit 1"),
        (GOOD[:-1] + bytes([GOOD[-1] ^ 0x01]), "unit 2 holding 0+10: bad CRC"),
        (GOOD[:7] + b"\xff" + GOOD[8:], "bad CRC"),  # a data byte hit on the line
        (encode_answer(2, 4, list(range(10))), "answer has function code 4, not 3"),
        (encode_answer(2, 3, list(range(4))), "unit 2 holding 0+10: byte count 8, expected 20"),
        (GOOD[:12], "short frame, 12 of 25 bytes"),
        (GOOD[:3], "short frame, 3 bytes"),
        (b"", "short frame, 0 bytes"),
        (GOOD + b"\x00", "1 bytes after the end of the frame"),
        (with_crc(bytes.fromhex("01 83 02")), "answer from unit 1"),  # someone else's exception
        (with_crc(bytes.fromhex("02 84 02")), "answer has function code 4, not 3"),
        (bytes.fromhex("02 83 02 00 00"), "bad CRC"),
        (with_crc(bytes.fromhex("02 83 02 00")), "exception frame of 6 bytes, expected 5"),
    ],
    ids=[
        "other-unit",
        "crc-byte",
        "data-byte",
        "other-function",
        "byte-count",
        "truncated",
        "header-only",
        "nothing",
        "trailing-byte",
        "other-unit-exception",
        "other-function-exception",
        "exception-bad-crc",
        "long-exception",
    ],
)
def test_everything_but_the_answer_is_refused(frame: bytes, message: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_read_response(frame, 2, 3, 10, start=0)
    assert message in str(caught.value)
    assert caught.value.link_down is False  # the bus is fine, this answer is not


def test_messages_name_the_request_without_a_start() -> None:
    with pytest.raises(LinkError, match=r"^unit 2 coil \(3\): answer from unit 1$"):
        parse_read_response(encode_answer(1, 1, [True, False, True]), 2, 1, 3)


# --- properties -----------------------------------------------------------------------------


@st.composite
def answers(draw: st.DrawFn) -> tuple[int, int, int, int, list[int] | list[bool]]:
    function = draw(st.sampled_from([1, 2, 3, 4]))
    limit = 125 if function in (3, 4) else 2000
    count = draw(st.integers(1, limit))
    start = draw(st.integers(0, 0x10000 - count))
    unit = draw(st.integers(0, 247))
    # raw bytes are much faster for hypothesis to draw than lists of up to 2000 items
    values: list[int] | list[bool]
    if function in (3, 4):
        raw = draw(st.binary(min_size=2 * count, max_size=2 * count))
        values = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    else:
        raw = draw(st.binary(min_size=(count + 7) // 8, max_size=(count + 7) // 8))
        values = [bool(raw[i // 8] >> (i % 8) & 1) for i in range(count)]
    return unit, function, start, count, values


@given(answers())
def test_any_answer_parses_back_to_its_values(
    case: tuple[int, int, int, int, list[int] | list[bool]],
) -> None:
    unit, function, start, count, values = case
    request = build_read_request(unit, function, start, count)
    assert len(request) == 8 and crc16(request) == 0
    frame = encode_answer(unit, function, values)
    assert len(frame) == expected_length(function, count)
    assert parse_read_response(frame, unit, function, count, start=start) == values


@given(answers(), st.data())
def test_no_single_byte_error_gets_through(
    case: tuple[int, int, int, int, list[int] | list[bool]], data: st.DataObject
) -> None:
    """The CRC covers every byte, so any corrupted byte must be refused, never decoded."""
    unit, function, start, count, values = case
    frame = bytearray(encode_answer(unit, function, values))
    index = data.draw(st.integers(0, len(frame) - 1), label="index")
    frame[index] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(LinkError):
        parse_read_response(bytes(frame), unit, function, count, start=start)


@given(answers(), st.data())
def test_a_cut_answer_is_refused(
    case: tuple[int, int, int, int, list[int] | list[bool]], data: st.DataObject
) -> None:
    unit, function, start, count, values = case
    frame = encode_answer(unit, function, values)
    cut = data.draw(st.integers(0, len(frame) - 1), label="cut")
    with pytest.raises(LinkError):
        parse_read_response(frame[:cut], unit, function, count, start=start)


# --- module docs and descriptions -----------------------------------------------------------


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(rtu_framing, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8
    assert result.failed == 0


def test_descriptions() -> None:
    serial = SerialSettings(
        port="/dev/ttyUSB0", baudrate=19200, parity="E", bytesize=8, stopbits=1,
        inter_frame_s=0.002,
    )  # fmt: skip
    transport = rtu.SerialRtuTransport(serial, 0.2)
    assert transport.description == "modbus-rtu /dev/ttyUSB0 19200 8E1"
    assert not transport.connected
    transport.close()  # never opened: nothing to do, no thread started
    tcp = rtu.RtuOverTcpTransport("10.0.0.5", 4001, 0.5)
    assert tcp.description == "modbus-rtu-over-tcp 10.0.0.5:4001"
    assert not tcp.connected


async def test_reads_refuse_the_wrong_table_and_a_closed_port() -> None:
    serial = SerialSettings(
        port="/dev/ttyUSB0", baudrate=9600, parity="N", bytesize=8, stopbits=2,
        inter_frame_s=0.004,
    )  # fmt: skip
    transport = rtu.SerialRtuTransport(serial, 0.2)
    with pytest.raises(ValueError, match="coil"):
        await transport.read_registers(1, "coil", 0, 1)
    with pytest.raises(LinkError, match="not open") as caught:
        await transport.read_bits(1, "coil", 0, 1)
    assert caught.value.link_down is True
