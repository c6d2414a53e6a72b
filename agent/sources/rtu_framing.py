"""Modbus RTU framing: requests built and answers checked, as pure functions.

Why our own framing instead of pymodbus's RTU client: pymodbus's async client checks only the
device id of an RTU answer. It does not check the function code or the byte count against the
request, and it gives us no way to flush the line after a timeout. RTU has no transaction id,
so a late answer to the previous request to the same unit with the same count would be taken
as the answer to the next one: the values of the previous poll, silently, with good quality.

The transports (agent.sources.rtu) talk to the port; this module only builds request frames
and checks answers: an answer is accepted only if its CRC is good and its unit id, function
code and byte count are those of the request.

Examples, with the classic request "read 10 holding registers from 0 on unit 1":

>>> build_read_request(1, 3, 0, 10).hex(" ")
'01 03 00 00 00 0a c5 cd'
>>> answer = bytes.fromhex("01 03 04 00 2a 01 00")
>>> answer += crc16(answer).to_bytes(2, "little")
>>> parse_read_response(answer, 1, 3, 2)
[42, 256]
"""

from __future__ import annotations

from agent.sources.transport import READ_FUNCTION, ExceptionReply, LinkError, describe_request

TABLE_OF_FUNCTION = {function: table for table, function in READ_FUNCTION.items()}
BIT_FUNCTIONS = (1, 2)
REGISTER_FUNCTIONS = (3, 4)
MAX_COUNT = {1: 2000, 2: 2000, 3: 125, 4: 125}  # Modbus application protocol, 6.1-6.4
EXCEPTION_FRAME_LENGTH = 5  # unit, function | 0x80, exception code, CRC (2)
MAX_FRAME_LENGTH = 256  # RTU ADU limit


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF); sent low byte first.

    >>> hex(crc16(b"123456789"))  # the CRC-16/MODBUS check value
    '0x4b37'
    >>> crc16(bytes.fromhex("01 03 00 00 00 0a")).to_bytes(2, "little").hex(" ")
    'c5 cd'
    """
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "little")


def _check_request(unit: int, function: int, start: int, count: int) -> None:
    if function not in MAX_COUNT:
        raise ValueError(f"function {function} is not a read (1, 2, 3 or 4)")
    if not 0 <= unit <= 255:
        raise ValueError(f"unit {unit} is outside 0..255")
    if not 1 <= count <= MAX_COUNT[function]:
        raise ValueError(
            f"count {count} is outside 1..{MAX_COUNT[function]} for function {function}"
        )
    if start < 0 or start + count > 0x10000:
        raise ValueError(f"{start}+{count} is outside the address space 0..65535")


def build_read_request(unit: int, function: int, start: int, count: int) -> bytes:
    """The RTU frame of a read request: unit, function, start, count, CRC.

    >>> build_read_request(0x11, 3, 0x6B, 3).hex(" ")
    '11 03 00 6b 00 03 76 87'
    """
    _check_request(unit, function, start, count)
    return _with_crc(bytes((unit, function)) + start.to_bytes(2, "big") + count.to_bytes(2, "big"))


def data_length(function: int, count: int) -> int:
    """Bytes of data in a normal answer: 2 per register, or the bits packed 8 to a byte."""
    return 2 * count if function in REGISTER_FUNCTIONS else (count + 7) // 8


def expected_length(function: int, count: int) -> int:
    """Length of a normal answer (unit, function, byte count, data, CRC); an exception is 5.

    >>> expected_length(3, 10), expected_length(1, 9)
    (25, 7)
    """
    return 3 + data_length(function, count) + 2


def request_text(unit: int, function: int, count: int, start: int | None) -> str:
    """A request in words for errors: `unit 3 holding 100+10` (no start: `unit 3 holding (10)`)."""
    table = TABLE_OF_FUNCTION.get(function, f"function {function}")
    if start is None:
        return f"unit {unit} {table} ({count})"
    return describe_request(unit, table, start, count)


def parse_read_response(
    frame: bytes, unit: int, function: int, count: int, *, start: int | None = None
) -> list[int] | list[bool]:
    """Check an answer against its request and return the registers (3, 4) or bits (1, 2).

    Raises `ExceptionReply` for a valid exception frame of this unit and function, and
    `LinkError(link_down=False)` for anything else that is not exactly the answer: short
    frame, bad CRC, another unit, another function, a byte count that does not fit `count`.
    `start` only names the request in messages.

    >>> frame = bytes.fromhex("11 03 06 ae 41 56 52 43 40 49 ad")  # Modbus spec example
    >>> parse_read_response(frame, 0x11, 3, 3)
    [44609, 22098, 17216]
    >>> parse_read_response(bytes.fromhex("11 01 05 cd 6b b2 0e 1b 45 e6"), 0x11, 1, 37)[:9]
    [True, False, True, True, False, False, True, True, True]
    >>> parse_read_response(_with_crc(bytes.fromhex("01 03 02 00 07")), 2, 3, 1, start=0)
    Traceback (most recent call last):
    ...
    agent.sources.transport.LinkError: unit 2 holding 0+1: answer from unit 1
    >>> try:
    ...     parse_read_response(bytes.fromhex("01 83 02 c0 f1"), 1, 3, 10, start=100)
    ... except ExceptionReply as exc:
    ...     print(exc.code, exc.request)
    2 unit 1 holding 100+10
    """
    request = request_text(unit, function, count, start)

    def fail(problem: str) -> LinkError:
        return LinkError(f"{request}: {problem}", link_down=False)

    frame = bytes(frame)
    if len(frame) < EXCEPTION_FRAME_LENGTH:
        raise fail(f"short frame, {len(frame)} bytes" + (f" ({frame.hex(' ')})" if frame else ""))
    is_exception = bool(frame[1] & 0x80)
    if is_exception:
        length = EXCEPTION_FRAME_LENGTH
        if len(frame) != length:
            raise fail(f"exception frame of {len(frame)} bytes, expected {length}")
    else:
        length = 3 + frame[2] + 2
        if len(frame) < length:
            raise fail(f"short frame, {len(frame)} of {length} bytes")
        if len(frame) > length:
            raise fail(f"{len(frame) - length} bytes after the end of the frame")
    sent = int.from_bytes(frame[-2:], "little")
    computed = crc16(frame[:-2])
    if sent != computed:
        raise fail(f"bad CRC (frame has {sent:04X}, computed {computed:04X})")
    if frame[0] != unit:
        raise fail(f"answer from unit {frame[0]}")
    answered = frame[1] & 0x7F
    if answered != function:
        raise fail(f"answer has function code {answered}, not {function}")
    if is_exception:
        raise ExceptionReply(frame[2], request)
    expected = data_length(function, count)
    if frame[2] != expected:
        raise fail(f"byte count {frame[2]}, expected {expected}")
    data = frame[3:-2]
    if function in REGISTER_FUNCTIONS:
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]


def function_for(table: str, kind: tuple[int, ...]) -> int:
    """The read function code of `table`; ValueError unless it is one of `kind` (bits/words)."""
    function = READ_FUNCTION.get(table)
    if function not in kind:
        names = [TABLE_OF_FUNCTION[f] for f in kind]
        raise ValueError(f"table {table!r} is not one of {names}")
    return function


def answer_length(header: bytes, function: int, count: int) -> int | None:
    """Length of the frame this 3-byte header announces, or None if it is not ours."""
    if header[1] & 0x80:
        return EXCEPTION_FRAME_LENGTH
    if header[2] == data_length(function, count):
        return expected_length(function, count)
    return None  # a byte count we did not ask for: the rest is read while draining


def exchange_failure(
    answer: bytes,
    mismatched: bool,
    timeout_s: float,
    unit: int,
    function: int,
    count: int,
    start: int,
) -> LinkError:
    """The error for an exchange without a complete answer (`answer` includes the drained
    bytes); `mismatched` if the header announced a byte count we did not ask for."""
    request = request_text(unit, function, count, start)
    if mismatched:
        try:
            parse_read_response(answer, unit, function, count, start=start)
        except LinkError as exc:
            return exc
        return LinkError(f"{request}: unexpected frame {answer[:16].hex(' ')}", link_down=False)
    if not answer:
        return LinkError(f"{request}: no reply within {timeout_s} s", link_down=False)
    return LinkError(
        f"{request}: no complete reply within {timeout_s} s "
        f"({len(answer)} bytes: {answer[:16].hex(' ')})",
        link_down=False,
    )
