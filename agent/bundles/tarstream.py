"""A forward-only reader of plain (uncompressed) tar files with every header bounded.

Bundle files come from a stick anyone can plug in, so the reader trusts nothing in them:
ustar headers are checksummed, a GNU long name or a pax extended header above
`MAX_EXTENSION_BYTES` is refused before it is read, a global pax header or an unknown type
is refused, and the caller bounds member count and sizes (archive.Limits). A compressed file
is refused by its magic number: the signed layout is a plain tar, and decompression would let
a few KB on the stick become gigabytes in memory. Every problem is an `UpdateRefused`; no other
exception leaves `TarReader` for any input (tests/unit/bundles/test_tar_fuzz.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from agent.bundles.refusals import Refusal, UpdateRefused, shown

BLOCK = 512
#: The most a GNU long name/link or a pax header may hold (real ones are a few hundred bytes).
MAX_EXTENSION_BYTES = 4096
#: Extension headers (GNU long name, pax) allowed in front of one member.
MAX_EXTENSIONS = 4
REGULAR, DIRECTORY, SYMLINK, HARDLINK, SPECIAL = "file", "dir", "symlink", "hardlink", "special"
_KINDS = {
    b"0": REGULAR, b"\x00": REGULAR, b"7": REGULAR, b"5": DIRECTORY, b"2": SYMLINK,
    b"1": HARDLINK, b"3": SPECIAL, b"4": SPECIAL, b"6": SPECIAL,
}  # fmt: skip
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZ": "bzip2", b"\xfd7zXZ": "xz", b"(\xb5/\xfd": "zstd"}


@dataclass(frozen=True)
class TarMember:
    """One member header: its name, kind (REGULAR, DIRECTORY, ...), size and link target."""

    name: str
    kind: str
    size: int
    linkname: str = ""

    def isfile(self) -> bool:
        """A regular file."""
        return self.kind == REGULAR


def _number(field: bytes, what: str) -> int:
    """An octal (or GNU base-256) numeric header field."""
    if field[:1] in (b"\x80", b"\xff"):  # base-256: first byte is the sign
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            raise UpdateRefused(Refusal.TRUNCATED, f"a tar header has a negative {what}")
        return value
    text = field.split(b"\x00", 1)[0].strip(b" \x00")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise UpdateRefused(
            Refusal.TRUNCATED, f"a tar header has a broken {what} field {shown(text)}"
        ) from None


def _pax_size(text: str) -> int:
    """A pax `size` record: a decimal number of bytes."""
    if not (0 < len(text) <= 20 and text.isascii() and text.isdigit()):
        raise UpdateRefused(Refusal.TRUNCATED, f"a pax header has a broken size {shown(text)}")
    return int(text)


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    """The records of a pax extended header: `<length> <key>=<value>\\n` each."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos:].strip(b"\x00"):
        space = data.find(b" ", pos, pos + 12)
        try:
            length = int(data[pos:space]) if space > pos else -1
        except ValueError:
            length = -1
        record = data[space + 1 : pos + length] if length > space - pos else b""
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n"):
            raise UpdateRefused(Refusal.TRUNCATED, "a pax extended header is malformed")
        key, eq, value = record[:-1].partition(b"=")
        if not eq:
            raise UpdateRefused(Refusal.TRUNCATED, "a pax extended header record has no '='")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class TarReader:
    """Member headers of a plain tar stream, in order; `read_data` or `skip_data` after each."""

    def __init__(self, stream: IO[bytes], label: str) -> None:
        self._stream = stream
        self._label = shown(label)
        self._left = 0  # data bytes of the current member not yet read
        self._pad = 0
        self._first = True
        self.ended = False

    def _read(self, n: int) -> bytes:
        data = self._stream.read(n)
        while len(data) < n:
            more = self._stream.read(n - len(data))
            if not more:
                break
            data += more
        return data

    def _block(self) -> bytes | None:
        block = self._read(BLOCK)
        if self._first:
            self._first = False
            for magic, name in _COMPRESSED.items():
                if block.startswith(magic):
                    raise UpdateRefused(
                        Refusal.NOT_AN_ARCHIVE,
                        f"{self._label} is {name}-compressed; a bundle is a plain tar file "
                        "(make it with lineside-export sign)",
                    )
            if len(block) < BLOCK:
                raise UpdateRefused(
                    Refusal.NOT_AN_ARCHIVE, f"{self._label} is not a tar file (too short)"
                )
        if not block:
            return None
        if len(block) < BLOCK:
            raise UpdateRefused(Refusal.TRUNCATED, f"{self._label} ends inside a tar header")
        return block

    def _header(self, block: bytes, first: bool) -> tuple[bytes, str, int, str]:
        try:
            stored = _number(block[148:156], "checksum")
        except UpdateRefused:
            stored = -1
        actual = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored != actual:
            if first:
                raise UpdateRefused(Refusal.NOT_AN_ARCHIVE, f"{self._label} is not a tar file")
            raise UpdateRefused(
                Refusal.TRUNCATED, f"{self._label} ends early or is damaged (bad header checksum)"
            )
        name = _text(block[0:100])
        if block[257:262] == b"ustar" and block[345:346] != b"\x00":
            name = f"{_text(block[345:500])}/{name}"
        return block[156:157], name, _number(block[124:136], "size"), _text(block[157:257])

    def _extension(self, size: int, what: str) -> bytes:
        if size > MAX_EXTENSION_BYTES:
            raise UpdateRefused(
                Refusal.OVERSIZED,
                f"{self._label} has a {what} of {size} bytes; the limit is {MAX_EXTENSION_BYTES}",
            )
        data = self._read(size)
        if len(data) < size:
            raise UpdateRefused(Refusal.TRUNCATED, f"{self._label} ends inside a {what}")
        self._read(-size % BLOCK)
        return data

    def next(self) -> TarMember | None:
        """The next member's header (skipping the rest of the current member), None at the end."""
        self.skip_data()
        if self.ended:
            return None
        long_name = long_link = None
        pax: dict[str, str] = {}
        for extensions in range(MAX_EXTENSIONS + 1):
            first = self._first
            block = self._block()
            if block is None or block == bytes(BLOCK):
                self.ended = True
                if extensions:
                    raise UpdateRefused(
                        Refusal.TRUNCATED, f"{self._label} ends after an extended header"
                    )
                return None
            flag, name, size, linkname = self._header(block, first)
            if flag in (b"L", b"K"):
                data = self._extension(size, "GNU long name")
                text = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
                long_name, long_link = (text, long_link) if flag == b"L" else (long_name, text)
                continue
            if flag == b"x":
                pax.update(_parse_pax(self._extension(size, "pax extended header")))
                continue
            if flag == b"g":
                raise UpdateRefused(
                    Refusal.SPECIAL_MEMBER, f"{self._label} has a global pax header"
                )
            kind = _KINDS.get(flag)
            if kind is None:
                raise UpdateRefused(
                    Refusal.SPECIAL_MEMBER,
                    f"{self._label} has a member of unknown tar type {shown(flag)}",
                )
            name = pax.get("path", long_name if long_name is not None else name)
            linkname = pax.get("linkpath", long_link if long_link is not None else linkname)
            if "size" in pax:
                size = _pax_size(pax["size"])
            if kind != REGULAR:
                size = 0  # links, directories and devices carry no data
            if not name.strip("/"):
                raise UpdateRefused(
                    Refusal.UNSAFE_PATH, f"{self._label} has a member with no name ({shown(name)})"
                )
            if kind == DIRECTORY:
                name = name.rstrip("/")
            elif name.endswith("/"):
                # tarfile would take it for a folder (the old V7 form); a bundle has none such
                raise UpdateRefused(
                    Refusal.UNSAFE_PATH,
                    f"{self._label} has a member {shown(name)} named like a folder but not one",
                )
            self._left, self._pad = size, -size % BLOCK
            return TarMember(name, kind, size, linkname)
        raise UpdateRefused(
            Refusal.OVERSIZED, f"{self._label} has more than {MAX_EXTENSIONS} extended headers"
        )

    def read_chunk(self, limit: int) -> bytes:
        """Up to `limit` bytes of the current member's data; b"" once it is all read."""
        if self._left == 0:
            return b""
        data = self._stream.read(min(limit, self._left))
        if not data:
            raise UpdateRefused(
                Refusal.TRUNCATED, f"{self._label} ends early, inside a member's data"
            )
        self._left -= len(data)
        if self._left == 0:
            if len(self._read(self._pad)) < self._pad:
                self.ended = True  # a missing padding block at the very end is harmless
            self._pad = 0
        return data

    def read_data(self, limit: int) -> bytes:
        """All of the current member's data, which must be at most `limit` bytes."""
        if self._left > limit:
            raise UpdateRefused(Refusal.OVERSIZED, f"a member is {self._left} bytes, limit {limit}")
        parts = []
        while chunk := self.read_chunk(1 << 20):
            parts.append(chunk)
        return b"".join(parts)

    def skip_data(self) -> None:
        """Read past the rest of the current member's data."""
        while self.read_chunk(1 << 20):
            pass
