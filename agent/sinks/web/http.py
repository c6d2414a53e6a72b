"""Just enough HTTP/1.1 for a read-only page on loopback: bounded requests, plain responses.

A request head is at most `MAX_HEAD` bytes and `MAX_HEADERS` lines, a body (the login form
only) at most `MAX_BODY` bytes, each read under a deadline; anything else is answered with a
4xx and the connection closed. No chunked bodies, no pipelining beyond keep-alive in order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 8192
MAX_HEADERS = 64
MAX_BODY = 2048
READ_TIMEOUT_S = 10.0
REASONS = {
    200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 411: "Length Required", 413: "Content Too Large",
    431: "Request Header Fields Too Large", 503: "Service Unavailable",
}  # fmt: skip


class BadRequest(Exception):
    """A request this server will not read; `status` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One parsed request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def cookie(self, name: str) -> str | None:
        """The value of one cookie, if the browser sent it."""
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def form(self) -> dict[str, str]:
        """The urlencoded form of a POST body (the first value of each field)."""
        try:
            fields = parse_qs(self.body.decode("utf-8", "replace"), max_num_fields=8)
        except ValueError:
            raise BadRequest(400, "a form of more than 8 fields") from None
        return {k: v[0] for k, v in fields.items()}

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after this answer."""
        return self.headers.get("connection", "").lower() != "close"


@dataclass
class Response:
    """One answer: status, headers and body."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, keep_alive: bool) -> bytes:
        """The bytes on the wire."""
        head = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'OK')}"]
        fields = {
            "Content-Type": self.content_type,
            "Content-Length": str(len(self.body)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Connection": "keep-alive" if keep_alive else "close",
            **self.headers,
        }
        head += [f"{k}: {v}" for k, v in fields.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection; None when the client closed it between requests."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise BadRequest(400, "the request ended inside its head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, f"request head over {MAX_HEAD} bytes") from None
    lines = head.decode("latin-1").split("\r\n")[:-2]
    if len(lines) > MAX_HEADERS:
        raise BadRequest(431, f"more than {MAX_HEADERS} header lines")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "not an HTTP/1.x request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "a malformed header line")
        headers[name.lower()] = value.strip()
    body = b""
    if method == "POST":
        if "transfer-encoding" in headers:
            raise BadRequest(411, "chunked bodies are not read; send Content-Length")
        try:
            length = int(headers.get("content-length", ""))
        except ValueError:
            raise BadRequest(411, "a POST needs a Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise BadRequest(413, f"a body over {MAX_BODY} bytes")
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise BadRequest(400, "the body ended early") from None
    return Request(method, urlsplit(target).path or "/", headers, body)
