"""Alarm state machines with debounce and hysteresis. Pure and synchronous."""

from __future__ import annotations

from enum import Enum

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]


class Edge(Enum):
    """What an update did to the alarm."""

    NONE = "none"
    RAISED = "raised"
    CLEARED = "cleared"


def check_clear_ratio(clear_ratio: float, who: str) -> None:
    """ValueError unless 0 < `clear_ratio` <= 1: an alarm clears at or below its raise level."""
    if not 0.0 < clear_ratio <= 1.0:
        raise ValueError(f"{who} clear_ratio {clear_ratio} must be in (0, 1]")


class DebouncedAlarm:
    """Raise after `raise_after` bad updates in a row; clear after `clear_after` good ones.

    An update can be neither (between the clear and the raise level): it resets both counts,
    which is the hysteresis band.

    Examples
    --------
    >>> alarm = DebouncedAlarm(raise_after=2, clear_after=2)
    >>> [alarm.update(bad=b, good=not b).value for b in (True, True, True, False, False)]
    ['none', 'raised', 'none', 'none', 'cleared']
    >>> score = DebouncedAlarm(raise_after=1, clear_after=1)  # against a threshold of 1.0
    >>> [score.level(v, 1.0, clear_ratio=0.8).value for v in (1.2, 0.9, 0.7)]
    ['raised', 'none', 'cleared']
    """

    def __init__(self, raise_after: int, clear_after: int) -> None:
        self.raise_after = raise_after
        self.clear_after = clear_after
        self.active = False
        self._bad = 0
        self._good = 0

    def reset(self) -> None:
        """Back to inactive with no history."""
        self.active = False
        self._bad = self._good = 0

    def state(self) -> dict[str, object]:
        """Whether it is active and its two run lengths, JSON-able, to survive a restart."""
        return {"active": self.active, "bad": self._bad, "good": self._good}

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()` (extra keys are ignored)."""
        self.active = bool(state["active"])
        self._bad = int(str(state["bad"]))
        self._good = int(str(state["good"]))

    def level(self, value: float, threshold: float, clear_ratio: float) -> Edge:
        """Feed a score against its threshold: bad above it, good below `clear_ratio` x it
        (the hysteresis every score alarm of a line shares, `[detection] clear_ratio`)."""
        return self.update(bad=value > threshold, good=value < clear_ratio * threshold)

    def update(self, bad: bool, good: bool) -> Edge:
        """Feed one observation: `bad` above the raise level, `good` below the clear level."""
        self._bad = self._bad + 1 if bad else 0
        self._good = self._good + 1 if good else 0
        if not self.active and self._bad >= self.raise_after:
            self.active = True
            return Edge.RAISED
        if self.active and self._good >= self.clear_after:
            self.active = False
            return Edge.CLEARED
        return Edge.NONE


class SustainedRuleAlarm:
    """Raise when one channel broke a rule in at least `hits` of its last `span` updates;
    clear after `clear_after` updates in a row where no channel does.

    Counting per channel, not across the line, matters: with nine charted tags, a single
    3-sigma point somewhere on the line is expected every few dozen samples of a healthy
    process, but the same tag breaking a rule three times in five samples is not.

    Examples
    --------
    >>> import numpy as np
    >>> alarm = SustainedRuleAlarm(channels=2, hits=2, span=3, clear_after=2)
    >>> rows = [[True, False], [False, True], [True, False], [False, False], [False, False]]
    >>> [alarm.update(np.array(r)).value for r in rows]
    ['none', 'none', 'raised', 'none', 'cleared']
    >>> alarm.channels_sustained.tolist()
    [False, False]
    >>> again = SustainedRuleAlarm(channels=2, hits=2, span=3, clear_after=2)
    >>> again.restore(alarm.state())
    >>> again.update(np.array([True, False])).value, again.update(np.array([True, False])).value
    ('none', 'raised')
    """

    def __init__(self, channels: int, hits: int, span: int, clear_after: int) -> None:
        self.hits = hits
        self.clear_after = clear_after
        self.active = False
        self._recent = np.zeros((span, channels), dtype=bool)
        self._next = 0
        self._good = 0
        self.channels_sustained = np.zeros(channels, dtype=bool)

    @property
    def span(self) -> int:
        """How many of the last updates the rule window holds."""
        return int(self._recent.shape[0])

    def retune(self, hits: int, span: int, clear_after: int) -> None:
        """New rule and clear count (a config reload); the alarm's state is kept. A new `span`
        starts the rule window empty, since the old one holds rows of another length."""
        if span != self.span:
            self._recent = np.zeros((span, self._recent.shape[1]), dtype=bool)
            self._next = 0
            self.channels_sustained[:] = False
        self.hits = hits
        self.clear_after = clear_after

    def reset(self) -> None:
        """Back to inactive with no history."""
        self.active = False
        self._recent[:] = False
        self._good = 0
        self.channels_sustained[:] = False

    def state(self) -> dict[str, object]:
        """The rule window, its position and the alarm, JSON-able, to survive a restart."""
        return {
            "active": self.active,
            "recent": self._recent.astype(np.uint8).tolist(),
            "next": self._next,
            "good": self._good,
        }

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a saved `state()`; ValueError if its rule window has another shape."""
        recent = np.asarray(state["recent"], dtype=bool)
        if recent.shape != self._recent.shape:
            raise ValueError(
                f"rule window state is {recent.shape} (span, channels), "
                f"this alarm has {self._recent.shape}"
            )
        self._recent = recent
        self._next = int(str(state["next"])) % recent.shape[0]
        self._good = int(str(state["good"]))
        self.active = bool(state["active"])
        self.channels_sustained = recent.sum(axis=0) >= self.hits

    def update(self, broken: BoolArray) -> Edge:
        """Feed one row: which channels broke a rule in it."""
        self._recent[self._next] = broken
        self._next = (self._next + 1) % self._recent.shape[0]
        self.channels_sustained = self._recent.sum(axis=0) >= self.hits
        sustained = bool(self.channels_sustained.any())
        self._good = 0 if sustained else self._good + 1
        if not self.active and sustained:
            self.active = True
            return Edge.RAISED
        if self.active and self._good >= self.clear_after:
            self.active = False
            return Edge.CLEARED
        return Edge.NONE
