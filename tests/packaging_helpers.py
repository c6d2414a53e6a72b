"""Helpers for packaging tests: a strict udev rule parser, and tools the tests must have."""

from __future__ import annotations

import re
import shutil

import pytest


def require(*tools: str) -> None:
    """Fail (never skip) when a tool these tests need is missing: `make test` installs it."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed; `make test` installs the Debian "
            "packages the tests need (see DEBIAN_TEST_PACKAGES in the Makefile)"
        )


UDEV_MATCH_KEYS = {
    "ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SYMLINK", "SUBSYSTEM", "SUBSYSTEMS",
    "DRIVER", "DRIVERS", "TAG", "TAGS", "TEST", "PROGRAM", "RESULT", "ATTR", "ATTRS", "SYSCTL",
    "ENV", "CONST",
}  # fmt: skip
UDEV_ASSIGN_KEYS = {
    "NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "SECLABEL", "ATTR", "SYSCTL", "ENV", "TAG",
    "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS",
}  # fmt: skip
_UDEV_PAIR = re.compile(
    r"\s*(?P<key>[A-Z]+)(?:\{(?P<attr>[^}]*)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"
    r'"(?P<value>(?:[^"\\]|\\.)*)"\s*(?P<sep>,|$)'
)


def parse_udev_rules(text: str) -> list[list[tuple[str, str | None, str, str]]]:
    """Rules as lists of (key, {attr}, operator, value); raises on anything malformed."""
    rules = []
    for lineno, line in enumerate(text.replace("\\\n", " ").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pairs, pos = [], 0
        while pos < len(line):
            m = _UDEV_PAIR.match(line, pos)
            if not m:
                raise ValueError(f"line {lineno}: cannot parse from {line[pos:]!r}")
            key, attr, op = m["key"], m["attr"], m["op"]
            if op in ("==", "!="):
                if key not in UDEV_MATCH_KEYS:
                    raise ValueError(f"line {lineno}: {key} is not a match key")
            elif key not in UDEV_ASSIGN_KEYS:
                raise ValueError(f"line {lineno}: {key} cannot be assigned")
            if key in ("ATTR", "ATTRS", "ENV", "SYSCTL", "CONST", "IMPORT") and not attr:
                raise ValueError(f"line {lineno}: {key} needs {{...}}")
            pairs.append((key, attr, op, m["value"]))
            pos = m.end()
            if m["sep"] == "," and not line[pos:].strip():
                raise ValueError(f"line {lineno}: trailing comma")
        rules.append(pairs)
    return rules
