"""`[detection] state_interval_s` and `state_max_age_s`: how the live detector state is kept.

    state_interval_s   seconds between two snapshots of the detector state (default 10)
    state_max_age_s    the oldest snapshot the agent restores at start (default 3600);
                       0 never restores (a snapshot is still written, for the next start)

Why these defaults: a snapshot every 10 s costs a few milliseconds of a worker thread and one
small file rename, and a crash loses at most 10 s of chart and alarm history, which matters
little: what hides a fault is the shift baseline re-learnt on the faulty level, and a snapshot
keeps the baseline from before. One hour covers what restarts a service during a shift (a
watchdog restart, a power blip, a bundle install); after a longer stop the process may really
have changed (a product changeover, maintenance), and a stale frozen baseline would then
raise or hold alarms about a level that is the new normal.
"""

from __future__ import annotations

import math

from agent.config.reader import Section

STATE_INTERVAL_S = 10.0
STATE_MAX_AGE_S = 3600.0


def load_state_settings(det: Section) -> tuple[float, float]:
    """(state_interval_s, state_max_age_s) of a `[detection]` table, checked."""
    interval = det.get("state_interval_s", float, STATE_INTERVAL_S)
    if not (math.isfinite(interval) and interval > 0):
        raise det.error(
            "state_interval_s",
            f"must be a number of seconds greater than 0, got {interval!r}",
            f"e.g. state_interval_s = {STATE_INTERVAL_S:g}; to never restore a snapshot, "
            "set state_max_age_s = 0 instead",
        )
    max_age = det.get("state_max_age_s", float, STATE_MAX_AGE_S)
    if not (math.isfinite(max_age) and max_age >= 0):
        raise det.error(
            "state_max_age_s",
            f"must be a number of seconds, 0 or more, got {max_age!r}",
            f"e.g. state_max_age_s = {STATE_MAX_AGE_S:g} (0: never restore the detector state)",
        )
    return interval, max_age
