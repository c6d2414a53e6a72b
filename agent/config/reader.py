"""Typed access to TOML tables; every error names the full dotted field path and the fix."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.errors import ConfigError, ConfigErrors

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")


def field_names(*classes: type[DataclassInstance]) -> set[str]:
    """The field names of dataclasses: the keys of a table whose keys are spelled as fields."""
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


def field_default(cls: type[DataclassInstance], name: str) -> Any:
    """The default of field `name` of a dataclass that cannot be built with no arguments."""
    for f in dataclasses.fields(cls):
        if f.name == name and f.default is not dataclasses.MISSING:
            return f.default
        if f.name == name and f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
    raise LookupError(f"{cls.__name__}.{name} has no default")


class Section:
    """One TOML table with the dotted path it was found at and the file it came from."""

    def __init__(self, raw: dict[str, Any], path: str, source: str) -> None:
        self.raw = raw
        self.path = path
        self.source = source

    def field(self, key: str) -> str:
        """The dotted path of `key` in this table."""
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str, fix: str = "") -> ConfigError:
        """A ConfigError about `key` in this table."""
        return ConfigError(self.field(key), problem, fix, source=self.source)

    def has(self, key: str) -> bool:
        """True if the key is present."""
        return key in self.raw

    def get(self, key: str, kind: type[T], default: T | None = None, fix: str = "") -> T:
        """A value of the given type; required when there is no default."""
        if key not in self.raw:
            if default is None:
                raise self.error(key, "is required", fix)
            return default
        value = self.raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.error(
                key, f"must be a {kind.__name__}, got {type(value).__name__} {value!r}", fix
            )
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        """A value of the given type, or None when absent."""
        return self.get(key, kind) if key in self.raw else None

    def positive(self, key: str, kind: type[T], default: T | None = None) -> T:
        """A number greater than zero."""
        value = self.get(key, kind, default)
        if not value > 0:  # type: ignore[operator]
            raise self.error(key, f"must be greater than 0, got {value!r}")
        return value

    def within(self, key: str, low: int, high: int, default: int | None = None) -> int:
        """An integer in [low, high]."""
        value = self.get(key, int, default)
        if not low <= value <= high:
            raise self.error(key, f"{value} is outside {low}..{high}")
        return value

    def table(self, key: str, required: bool = True) -> Section:
        """A sub-table; an empty one when optional and absent."""
        raw = self.raw.get(key)
        if raw is None and not required:
            return Section({}, self.field(key), self.source)
        if not isinstance(raw, dict):
            raise self.error(key, "is missing or not a table", f"add a [{self.field(key)}] table")
        return Section(raw, self.field(key), self.source)

    def tables(self, key: str, required: bool = True) -> list[Section]:
        """An array of tables ([[key]]); at least one when required."""
        raw = self.raw.get(key)
        if raw is None and not required:
            return []
        if not isinstance(raw, list) or not raw or not all(isinstance(t, dict) for t in raw):
            raise self.error(key, "needs at least one entry", f"add one or more [[{key}]] tables")
        return [Section(t, f"{self.field(key)}[{i}]", self.source) for i, t in enumerate(raw)]

    def choice(
        self, key: str, options: tuple[str, ...], default: str | None = None, fix: str = ""
    ) -> str:
        """A string that must be one of `options`."""
        value = self.get(key, str, default, fix)
        if value not in options:
            raise self.error(key, f"{value!r} is not one of {', '.join(options)}", fix)
        return value

    def path_value(self, key: str, base: Path, default: str | None = None) -> Path:
        """A path; relative paths are relative to the file's directory."""
        value = Path(self.get(key, str, default))
        return value if value.is_absolute() else (base / value)

    def reject_unknown(self, known: set[str]) -> None:
        """Refuse keys this table does not define: a typo must not be silently ignored."""
        found = ErrorList()
        for key in self.raw:
            if key not in known:
                close = sorted(k for k in known if k[:3] == key[:3]) or sorted(known)
                found.add(self.error(key, "is not a known setting", "known: " + ", ".join(close)))
        found.raise_any()


class ErrorList:
    """Collects the ConfigErrors of independent parts of a file, to report them all at once."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def __bool__(self) -> bool:
        return bool(self.errors)

    def add(self, error: ConfigError) -> None:
        """Keep one error (each of a `ConfigErrors`)."""
        self.errors.extend(error.errors)

    def attempt(self, read: Callable[[], T]) -> T | None:
        """`read()`, or None after keeping the ConfigError it raised."""
        try:
            return read()
        except ConfigError as exc:
            self.add(exc)
            return None

    def raise_any(self) -> None:
        """Raise what was kept: the one error itself, or a `ConfigErrors` of several."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors)

    def result(self, value: T | None) -> T:
        """`value` when nothing was kept, else raise what was kept."""
        self.raise_any()
        if value is None:
            raise ValueError("nothing was kept, yet there is no value")
        return value


def read_toml(path: Path) -> Section:
    """The root table of a TOML file."""
    try:
        with path.open("rb") as f:
            return Section(tomllib.load(f), "", str(path))
    except FileNotFoundError:
        raise ConfigError("file", f"{path} does not exist", "check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"{path} is not valid TOML: {exc}", source=str(path)) from None
