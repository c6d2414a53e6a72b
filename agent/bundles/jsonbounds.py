"""JSON from a bundle file, parsed with bounds on its size and its nesting depth.

`json.loads` recurses once per nested array or object and stops at the interpreter's
recursion limit with a RecursionError: `parse_json` turns that into a refusal, then measures
the parsed document's depth without recursion and refuses anything above `MAX_DEPTH`, so no
later walk of the document (the manifest parser, json.dumps into updates.log) can recurse
deeply either. Every parser failure is an `UpdateRefused` with the reason the caller names.
Sizes are bounded before the parse, which bounds the time it takes (it is linear).
"""

from __future__ import annotations

import json
from typing import Any

from agent.bundles.refusals import Refusal, UpdateRefused

#: Deeper than any manifest the export writes (4 levels) by a wide margin.
MAX_DEPTH = 32


def nesting_depth(doc: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON document (a scalar is 0)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth + 1)
            stack.extend((item, depth + 1) for item in value)
    return deepest


def parse_json(data: bytes, what: str, reason: Refusal, max_bytes: int) -> Any:
    """Parse untrusted JSON bytes; refuse (with `reason`) oversized, too deep or broken text."""
    if len(data) > max_bytes:
        raise UpdateRefused(reason, f"{what} is {len(data)} bytes, limit {max_bytes}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UpdateRefused(reason, f"{what} is not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise UpdateRefused(
            reason, f"{what} nests arrays or objects far deeper than the limit {MAX_DEPTH}"
        ) from None
    except ValueError as exc:
        raise UpdateRefused(reason, f"{what} is not JSON: {exc}") from None
    depth = nesting_depth(doc)
    if depth > MAX_DEPTH:
        raise UpdateRefused(
            reason, f"{what} nests arrays or objects {depth} deep; the limit is {MAX_DEPTH}"
        )
    return doc
