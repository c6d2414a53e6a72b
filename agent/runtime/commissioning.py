"""Commissioning mode at run time: keep what the line learnt, and watch for its first bundle.

A site with no `[model] bundle` runs `agent.pipeline.commissioning.CommissioningLine`. What it
learnt is written to `learned-limits.<line>.json` in the state directory (atomically, once,
off the loop), and read back at the next start when it covers the same tags, so a restart does
not learn again; delete the file to learn anew (e.g. after a changeover).

The first bundle arrives by the normal update path: `lineside bundle install ... --state-dir
<the journal's directory>` makes the store's `current` link there. `FirstModelWatch` polls for
it (a stat a second); when it appears the agent stops its services and the daemon starts it
again on that bundle (agent.runtime.daemon): the service stays up, SCADA clients reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

from agent.bundles.store import ModelStore, write_atomic
from agent.pipeline.commissioning import CommissioningLine
from agent.pipeline.learning import LearnedLimits
from agent.sinks.journal import Journal
from agent.sinks.scada import ScadaServer

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 1.0


class ModelArrived(Exception):
    """A bundle was installed for a line in commissioning mode: restart the agent on it."""

    def __init__(self, bundle: Path, line: str = "") -> None:
        super().__init__(f"a model bundle was installed at {bundle}")
        self.bundle = bundle
        self.line = line  # the line it is for ("": the site's only line)


def learned_path(state_dir: Path, line: str) -> Path:
    """Where a line's learnt limits live: `learned-limits.<line>.json` in the state directory."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", line)
    return state_dir / f"learned-limits.{safe}.json"


def load_learned(path: Path, channels: list[str]) -> LearnedLimits | None:
    """The limits learnt before, if the file exists and covers exactly these tags."""
    try:
        raw = json.loads(path.read_bytes())
        learned = LearnedLimits.from_dict(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("learning again: %s is unreadable (%s)", path, exc)
        return None
    if learned.channels != channels:
        log.warning(
            "learning again: %s was learnt on other tags (%s); the site now has %s",
            path, ", ".join(learned.channels), ", ".join(channels),
        )  # fmt: skip
        return None
    return learned


def save_learned(path: Path, learned: LearnedLimits) -> None:
    """Write the learnt limits atomically (temp file, fsync, rename)."""
    payload = json.dumps(learned.to_dict(), indent=1, sort_keys=True).encode()
    write_atomic(path, payload, mode=0o640)


def installed_version(state_dir: Path) -> int | None:
    """The version the store's `current` link under `state_dir` points at, if any."""
    return ModelStore(state_dir).current_version()


class FirstModelWatch:
    """Polls the state directory's model store until a first bundle is installed."""

    def __init__(
        self, state_dir: Path, interval_s: float = WATCH_INTERVAL_S, line: str = ""
    ) -> None:
        self.state_dir = state_dir
        self.interval_s = interval_s
        self.line = line
        self.ignored: set[int] = set()  # versions that were installed but did not fit

    def ignore(self, bundle: Path) -> None:
        """Do not restart again for the version installed now (it did not fit the site)."""
        version = installed_version(self.state_dir)
        if version is not None:
            self.ignored.add(version)

    async def run(self) -> None:
        """Return never; raise ModelArrived once a (new) bundle is installed."""
        store = ModelStore(self.state_dir)
        while True:
            version = await asyncio.to_thread(installed_version, self.state_dir)
            if version is not None and version not in self.ignored:
                bundle = store.current_link
                log.warning("model %d installed at %s: restarting the agent on it", version, bundle)
                raise ModelArrived(bundle, self.line)
            await asyncio.sleep(self.interval_s)


def learnt_text(learned: LearnedLimits) -> str:
    """What was learnt, in one line for the log and the journal."""
    ignored = {k: v for k, v in learned.classes.items() if k not in learned.modelled}
    text = (
        f"limits learnt on the device from {learned.rows} rows ({learned.learned_s:.0f} s): "
        f"SPC and shift alarms on {', '.join(learned.modelled) or 'no tag'}"
    )
    if ignored:
        text += "; not modelled: " + "; ".join(
            f"{k} ({kind}: {why})" for k, (kind, why) in ignored.items()
        )
    return text


class LearningReports:
    """After each sample of a commissioning line: SCADA's learning nodes when they move by
    0.1 %, and once learning is complete the journal's record and the learnt-limits file."""

    def __init__(
        self, scada: ScadaServer, journal: Journal, path: Path, line: str | None = None
    ) -> None:
        self.scada = scada
        self.journal = journal
        self.path = path
        self.line = line  # None: the site's only line
        self._shown: tuple[str, float] | None = None
        self._saving: set[asyncio.Task[None]] = set()

    def after(self, line: CommissioningLine) -> None:
        """Called by the detection loop after the line processed a sample; never blocks."""
        status = line.status()
        shown = (status.state, round(status.progress, 3))
        if shown != self._shown:
            self._shown = shown
            self.scada.publish_learning(status.state, status.progress, status.eta_s, self.line)
        learned = line.just_learned
        if learned is None:
            return
        text = learnt_text(learned)
        log.warning("%s", text)
        self.journal.record_model_change(
            "none", "learned", text, line=self.line or "", status="learned"
        )
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(save_learned, self.path, learned), name="save-learned"
        )
        self._saving.add(task)
        task.add_done_callback(self._saved)

    def _saved(self, task: asyncio.Task[None]) -> None:
        self._saving.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not keep the learnt limits in %s: %s", self.path, task.exception())

    async def aclose(self) -> None:
        """Wait until the learnt limits are on disk (at shutdown)."""
        if self._saving:
            await asyncio.wait(self._saving)
