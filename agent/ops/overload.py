"""Whether the agent keeps up, and if not, why: the reason `Agent/Health` and STATUS= give. Pure.

The agent is overloaded while, within the last `WINDOW_S` seconds, a PLC connection skipped
a poll slot (a poll outlasted its interval, so a sample the site asked for was never taken),
the detection loop dropped a sample from its full queue, or a value reached the address space
more than `LAG_LIMIT_MS` after its poll. The reason names each sign with its figure, so a
SCADA operator reads what to look at, and it holds for the window after the last sign.

>>> watch = OverloadWatch()
>>> watch.observe(0.0, skipped=0, dropped=0, lag_ms=20.0)
>>> watch.reason
''
>>> watch.observe(1.0, skipped=12, dropped=0, lag_ms=1500.0)
>>> watch.reason
'overloaded: 12 poll slots skipped in the last 10 s; publish lag 1500 ms'
>>> watch.observe(12.0, skipped=12, dropped=0, lag_ms=20.0)
>>> watch.reason
''
"""

from __future__ import annotations

from collections import deque

#: Seconds an overload sign keeps the agent degraded.
WINDOW_S = 10.0
#: Poll-to-address-space delay above which publishing is behind, milliseconds.
LAG_LIMIT_MS = 1000.0


class OverloadWatch:
    """Turns the counters of skipped slots and dropped samples, and the publish lag, into a
    reason ('' while the agent keeps up)."""

    def __init__(self, window_s: float = WINDOW_S, lag_limit_ms: float = LAG_LIMIT_MS) -> None:
        self.window_s = window_s
        self.lag_limit_ms = lag_limit_ms
        self._history: deque[tuple[float, int, int]] = deque()
        self._lag_at = -float("inf")  # when the lag was last above its limit
        self._lag_ms = 0.0  # the highest lag seen in the window
        self.reason = ""

    def observe(self, now: float, skipped: int, dropped: int, lag_ms: float) -> None:
        """Take the counters since start and the last publish lag at monotonic time `now`."""
        history = self._history
        history.append((now, skipped, dropped))
        while len(history) > 1 and history[1][0] <= now - self.window_s:
            history.popleft()  # keep one entry at or before the window's start
        if lag_ms > self.lag_limit_ms:
            fresh = now - self._lag_at > self.window_s
            self._lag_ms = lag_ms if fresh else max(self._lag_ms, lag_ms)
            self._lag_at = now
        _, skipped_then, dropped_then = history[0]
        window = f"{self.window_s:g} s"
        signs = []
        if skipped > skipped_then:
            signs.append(f"{skipped - skipped_then} poll slots skipped in the last {window}")
        if dropped > dropped_then:
            signs.append(f"{dropped - dropped_then} samples dropped in the last {window}")
        if now - self._lag_at <= self.window_s:
            signs.append(f"publish lag {self._lag_ms:.0f} ms")
        self.reason = f"overloaded: {'; '.join(signs)}" if signs else ""


def with_overload(health: str, overload: str) -> str:
    """`Agent/Health` with the overload reason added ('ok' becomes 'degraded: <reason>').

    >>> with_overload("ok", "")
    'ok'
    >>> with_overload("degraded: no good reading of a", "overloaded: publish lag 2000 ms")
    'degraded: no good reading of a; overloaded: publish lag 2000 ms'
    """
    if not overload:
        return health
    if health.startswith("degraded: "):
        return f"{health}; {overload}"
    return f"degraded: {overload}"
