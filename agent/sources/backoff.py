"""Exponential backoff with jitter, shared by every source that reconnects."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter between `initial` and `maximum` seconds."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The next wait: grows 2x per failure up to `maximum`, jittered to 50..100 %."""
        ceiling = min(self.maximum, self.initial * (2.0**self.attempt))
        self.attempt += 1
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Back to the first delay after a success."""
        self.attempt = 0
