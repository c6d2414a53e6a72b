"""Logging: structured journald records under systemd, readable plain lines otherwise.

Under systemd (stderr is the stream `JOURNAL_STREAM` names, and journald's socket exists) each
record goes to journald over its native protocol: one datagram of `KEY=value` fields on
`/run/systemd/journal/socket`, no systemd-python needed. Besides MESSAGE and PRIORITY every
record carries SYSLOG_IDENTIFIER, LOGGER, CODE_FILE/CODE_LINE/CODE_FUNC, the context fields
(LINE, MODEL_VERSION, set with `set_context`) and any upper-case `extra=` fields of the call,
e.g. `log.warning("...", extra={"TAG": "melt_pressure", "EVENT_ID": eid})`, so that
`journalctl -u lineside EVENT_ID=...` finds one alarm.

If a datagram cannot be sent (journald restarting, a record too large) the line goes to
stderr instead, which journald also captures: nothing is lost, only the fields.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
from pathlib import Path
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"
# Overrides the socket path; for tests and for containers that bind-mount journald's socket.
SOCKET_ENV = "LINESIDE_JOURNAL_SOCKET"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FIELD = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_context: dict[str, str] = {}


def set_context(**fields: Any) -> None:
    """Fields every later journald record carries (e.g. LINE, MODEL_VERSION); "" removes one."""
    for key, value in fields.items():
        if value in ("", None):
            _context.pop(key, None)
        else:
            _context[key] = str(value)


def encode_field(key: str, value: str) -> bytes:
    """One field in journald's native format (binary-safe form for multi-line values)."""
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        return key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return key.encode() + b"=" + data + b"\n"


def decode_fields(datagram: bytes) -> dict[str, str]:
    """Inverse of `encode_field` over a whole datagram (what journald does; used in tests)."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            i = nl + 1
        else:
            (size,) = struct.unpack("<Q", datagram[nl + 1 : nl + 9])
            fields[line.decode()] = datagram[nl + 9 : nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return fields


class JournaldHandler(logging.Handler):
    """A logging handler speaking journald's native datagram protocol."""

    def __init__(self, path: str = JOURNAL_SOCKET, identifier: str = "lineside") -> None:
        super().__init__()
        self.path = path
        self.identifier = identifier
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # Never block the event loop on a busy journald: EAGAIN sends the line to stderr.
        self.sock.setblocking(False)
        self.fallback = logging.StreamHandler(sys.stderr)
        self.fallback.setFormatter(logging.Formatter(PLAIN_FORMAT))

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        """The journald fields of a record."""
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        fields = {
            "MESSAGE": message,
            "PRIORITY": str(_PRIORITY.get(record.levelno, 7)),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
            "THREAD_NAME": record.threadName or "",
            **_context,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and _FIELD.match(key) and value is not None:
                fields[key] = str(value)
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record; on failure write it to stderr instead."""
        try:
            datagram = b"".join(encode_field(k, v) for k, v in self.fields(record).items())
            self.sock.sendto(datagram, self.path)
        except OSError:
            self.fallback.emit(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
        super().close()


def journald_socket() -> str | None:
    """journald's socket if this process logs to the journal (stderr is JOURNAL_STREAM)."""
    path = os.environ.get(SOCKET_ENV) or JOURNAL_SOCKET
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream or not Path(path).exists():
        return None
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return path if stream == f"{st.st_dev}:{st.st_ino}" else None


def configure_logging(level: str, quiet: tuple[str, ...] = ("pymodbus", "asyncua")) -> str:
    """Set up the root logger for the daemon; returns "journald" or "plain"."""
    numeric = getattr(logging, level.upper())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    path = journald_socket()
    handler: logging.Handler
    if path is not None:
        handler = JournaldHandler(path)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    # The protocol libraries are chatty at INFO; their problems reach us as exceptions.
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
    return "plain" if path is None else "journald"
