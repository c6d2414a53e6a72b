"""One home for the services' counters: each registers its own stats once, by name.

A service keeps counting in its own stats object (`JournalStats`, `ExplainerStats`,
`SnapshotStats`, the agent's `LoopStats`, ...) and registers that object here when it is built;
nothing is copied. Whoever publishes the counters (the OPC-UA server's `Agent/` object, see
agent/sinks/scada/limits.py) reads the views' attributes when it publishes. Reads are plain
attribute reads, as thread-safe as the counters themselves (a worker thread's `+= 1` is seen
whole or not yet).

>>> from dataclasses import dataclass
>>> @dataclass
... class Stats:
...     written: int = 0
>>> registry, stats = CounterRegistry(), Stats()
>>> registry.register("journal", stats)
>>> stats.written += 1
>>> registry.read("journal", "written", 0), registry.read("explainer", "dropped", 0)
(1, 0)
"""

from __future__ import annotations

from typing import Any


class CounterRegistry:
    """Named read-only views of the services' stats, read when they are published."""

    def __init__(self) -> None:
        self._views: dict[str, object] = {}

    def register(self, name: str, view: object) -> None:
        """Register `view` (an object whose attributes are the counts) under `name`, once.

        The object is kept, not copied: later changes to its attributes are what is read.
        Registering another object under a taken name is a wiring mistake and raises.
        """
        held = self._views.get(name)
        if held is not None and held is not view:
            raise ValueError(f"counters {name!r} are already registered")
        self._views[name] = view

    def register_part(self, name: str, view: object) -> None:
        """Register one line's share of `name` (each line of a site has its own explainer,
        snapshots): the published figure sums the parts (see `SummedView`)."""
        held = self._views.get(name)
        if held is None:
            self._views[name] = view
        elif isinstance(held, SummedView):
            held.parts.append(view)
        elif held is not view:
            self._views[name] = SummedView([held, view])

    def view(self, name: str) -> object | None:
        """The view registered under `name`, or None."""
        return self._views.get(name)

    def read(self, name: str, field: str, default: Any) -> Any:
        """Attribute `field` of the view `name` now, or `default` while none is registered."""
        view = self._views.get(name)
        return default if view is None else getattr(view, field)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._views)


class SummedView:
    """Several services' stats read as one: numbers are summed, flags all true, texts joined.

    >>> from types import SimpleNamespace as N
    >>> both = SummedView([N(written=2, ok=True, why=""), N(written=3, ok=False, why="full")])
    >>> both.written, both.ok, both.why
    (5, False, 'full')
    """

    def __init__(self, parts: list[object]) -> None:
        self.parts = parts

    def __getattr__(self, field: str) -> Any:
        if field == "parts":
            raise AttributeError(field)
        values = [getattr(part, field) for part in self.parts]
        if all(isinstance(v, bool) for v in values):
            return all(values)
        if all(isinstance(v, int | float) for v in values):
            return sum(values)
        return "; ".join(dict.fromkeys(str(v) for v in values if v))
