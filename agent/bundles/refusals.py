"""Why an update was refused: one reason per kind of bad bundle, each with its own words.

Every refusal is an `UpdateRefused` carrying a `Refusal`; the CLI prints
`refused (<reason>): <detail>` on one line and exits 3. Tests and the USB result file
match on the reason's value, so the values are part of the contract.

Bundle files come from untrusted media: every string taken from one (a member name, a key id,
a file name on the stick) goes into a message through `shown`, which escapes control
characters and cuts it to `SHOWN_CHARS`; `UpdateRefused` itself escapes and caps its whole
detail at `MAX_DETAIL_CHARS`, so no refusal can flood stderr, updates.log or the result file.
"""

from __future__ import annotations

import enum

from agent.errors import BundleError


class Refusal(enum.Enum):
    """The distinct reasons a bundle is refused, in the order the checks run."""

    UNREADABLE = "unreadable"  # the file on the stick cannot be read (gone, I/O error)
    NO_SPACE = "no-space"  # the store would not keep room for two models
    NOT_AN_ARCHIVE = "not-an-archive"  # not a tar file at all
    TRUNCATED = "truncated"  # a tar file that ends early or has a broken header
    LAYOUT = "layout"  # manifest.json and manifest.sig are not the first two members
    SIGNATURE_MALFORMED = "signature-malformed"  # manifest.sig is not a signature file
    UNKNOWN_KEY = "unknown-key"  # signed by a key the trust directory does not hold
    BAD_SIGNATURE = "bad-signature"  # the signature does not match the manifest bytes
    UNKNOWN_FORMAT = "unknown-format"  # a manifest format this agent does not know
    BAD_MANIFEST = "bad-manifest"  # signed, but a field is missing or malformed
    AGENT_TOO_OLD = "agent-too-old"  # min_agent_version is newer than this agent
    DOWNGRADE = "downgrade"  # model_version not above the highest installed
    INCOMPATIBLE = "incompatible"  # channels or window do not fit the site / running model
    UNSAFE_PATH = "unsafe-path"  # an absolute path or `..` in the archive
    LINK_MEMBER = "link-member"  # a symlink or hardlink in the archive
    SPECIAL_MEMBER = "special-member"  # a device, fifo or other non-regular member
    DUPLICATE_MEMBER = "duplicate-member"  # the same path twice
    UNLISTED_FILE = "unlisted-file"  # a file the manifest does not list
    MISSING_FILE = "missing-file"  # a file the manifest lists is not in the archive
    OVERSIZED = "oversized"  # a member or the whole bundle is above the limits
    SIZE_MISMATCH = "size-mismatch"  # a member's size differs from the manifest
    HASH_MISMATCH = "hash-mismatch"  # a member's sha256 differs from the manifest
    NO_GOLDEN = "no-golden"  # the bundle carries no golden inputs to test the model with
    MODEL_LOAD = "model-load"  # onnxruntime cannot load or run the model
    NON_FINITE = "non-finite"  # the model returns NaN or infinity on the golden inputs
    GOLDEN_MISMATCH = "golden-mismatch"  # outputs differ from the expected golden outputs
    BUSY = "busy"  # another install or rollback holds the store lock
    NO_PREVIOUS = "no-previous"  # a rollback was asked for, but no previous version is kept
    UNEXPECTED = "unexpected-error"  # the updater failed on this file in a way it has no name for


#: How much of one attacker-supplied string a message shows.
SHOWN_CHARS = 200
#: The longest detail a refusal carries.
MAX_DETAIL_CHARS = 1000


def _escaped(text: str) -> str:
    """Control, format and unpaired surrogate characters as Python escapes; the rest as is."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _bounded(text: str, limit: int) -> str:
    """Escaped and cut to `limit` characters (escaping only the part that can be shown)."""
    escaped = _escaped(text[: limit + 1])
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}... ({len(text)} chars in all)"


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """An attacker-supplied value for a message: as is when it is short, printable text;
    otherwise quoted with control characters escaped, at most `limit` chars."""
    text: str | bytes = value if isinstance(value, (str, bytes)) else str(value)[: limit + 1]
    if isinstance(text, str) and 0 < len(text) <= limit and text.isprintable():
        return text
    head = repr(text[:limit])  # repr escapes control, format and surrogate characters
    return head if len(text) <= limit else f"{head}... ({len(text)} chars in all)"


class UpdateRefused(BundleError):
    """A bundle was refused before it could touch the installed model."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        self.reason = reason
        self.detail = _bounded(detail, MAX_DETAIL_CHARS)
        super().__init__(f"refused ({reason.value}): {self.detail}")
