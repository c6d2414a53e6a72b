"""Every error Lineside raises on purpose, as one tree.

LinesideError
├── ConfigError          a site config or tag map is malformed; names the field and the fix
├── BundleError          a model bundle is missing, corrupt, or incompatible; says why
│   ├── BundleFormatError    the manifest is of a format this agent does not know
│   └── UpdateRefused        a bundle file was refused before install; `.reason` is a
│                            `Refusal` (agent/bundles/refusals.py), one per kind of bad bundle
├── DataError            a CSV to replay or train on is unreadable; names file, column, row
├── ExplainerModelError  an exported explainer LLM directory cannot be loaded; says which file
└── StartupError         a service could not start (e.g. the OPC-UA port is taken)

A failed PLC read is not an exception anyone sees: the hub turns it into bad-quality readings
whose `reason` says what happened, and the detection loop carries on.
"""

from __future__ import annotations


class LinesideError(Exception):
    """Base of every error Lineside raises on purpose."""


class ConfigError(LinesideError):
    """A config value is wrong: `field` is its dotted path, `fix` says what to do."""

    def __init__(self, field: str, problem: str, fix: str = "", *, source: str = "") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        self.source = source
        where = f"{source}: " if source else ""
        hint = f" (fix: {fix})" if fix else ""
        super().__init__(f"{where}{field}: {problem}{hint}")


class BundleError(LinesideError):
    """A bundle cannot be used; the message says which file or field and why."""


class BundleFormatError(BundleError):
    """The manifest declares a bundle format this agent does not understand."""


class DataError(LinesideError):
    """A data file cannot be used; the message names the file, and the column and row."""


class StartupError(LinesideError):
    """A service of the agent could not start; the message says which and why."""


class ExplainerModelError(LinesideError):
    """An exported explainer LLM cannot be used; the message names the file and why."""
