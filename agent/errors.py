"""Every error Lineside raises on purpose, as one tree.

LinesideError
├── ConfigError          a site config or tag map is malformed; names the field and the fix
│   └── ConfigErrors         several at once (`check-config` prints every one); `.errors`
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

    @property
    def errors(self) -> list[ConfigError]:
        """Every problem this error stands for: itself, or each of a `ConfigErrors`."""
        return [self]


class ConfigErrors(ConfigError):
    """Several independent config problems found in one load, in file order.

    Its own `field`, `problem`, `fix` and `source` are those of the first, so a caller that
    handles one ConfigError still reads a sensible one; its text is one line per problem."""

    def __init__(self, errors: list[ConfigError]) -> None:
        flat = [e for error in errors for e in error.errors]
        if not flat:
            raise ValueError("ConfigErrors needs at least one error")
        first = flat[0]
        super().__init__(first.field, first.problem, first.fix, source=first.source)
        self._errors = flat
        self.args = ("\n".join(str(e) for e in flat),)

    @property
    def errors(self) -> list[ConfigError]:
        """Every problem, in the order found."""
        return list(self._errors)

    def __str__(self) -> str:
        return str(self.args[0])


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
