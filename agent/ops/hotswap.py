"""Hot swap of the running model when the store's `current` link moves, with probation.

The service polls `current` (a readlink, once a second). A new version is loaded and its
hashes checked in a worker thread; the detection loop then swaps it in between two samples
(`at_boundary`), keeping its window, so no cycle is dropped and no window is scored half by
one model. During probation the old model scores in shadow (agent/ops/probation.py); when the
new one fails, the loop goes back to the old one at the next sample and the service points
`current` back at the old version on disk, writes the audit log and the journal, and says why
on the OPC-UA tags. The highest-version record is left alone, so the failed version cannot be
installed again; a fixed bundle needs a higher version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.detectors.spc import SpcDetector
from agent.detectors.vae import VaeDetector
from agent.errors import BundleError
from agent.ops.bundles import Bundle, load_bundle
from agent.ops.checks import check_compat
from agent.ops.probation import ProbationDetector, ProbationPolicy
from agent.ops.store import ModelStore
from agent.types import Event, EventKind, EventState

if TYPE_CHECKING:
    from agent.app import Agent

log = logging.getLogger(__name__)
MODEL_SEVERITY = 600


@dataclass
class ModelState:
    """What SCADA sees of the model: ModelVersion, ModelStatus, LastUpdate."""

    version: int
    label: str
    status: str = "active"  # active | probation | rolled-back
    last_update: str = ""

    @property
    def version_text(self) -> str:
        """ModelVersion as published: `<version> (<label>)`."""
        return f"{self.version} ({self.label})"


def store_of(bundle_path: Path) -> ModelStore | None:
    """The store a site's `model.bundle` lives in, if it names a store's `current` link."""
    models = bundle_path.parent
    if bundle_path.name == "current" and (models / "versions").is_dir():
        return ModelStore(models.parent)
    return None


async def publish_state(scada: Any, line: str, state: ModelState) -> None:
    """Write the model state into the OPC-UA nodes the server has (others are skipped)."""
    setter = getattr(scada, "set_model_state", None)
    if setter is not None:
        await setter(state)
        return
    from asyncua import ua

    for name, value in (
        ("ModelVersion", state.version_text),
        ("ModelStatus", state.status),
        ("LastUpdate", state.last_update),
    ):
        path = f"Lines/{line}/{name}"
        try:
            scada.node_id(path)
        except KeyError:
            continue
        await scada._write(path, value, ua.VariantType.String)  # the server's own write path


class ModelUpdates:
    """Watches the model store and swaps, probates and rolls back models in a running agent."""

    def __init__(
        self, agent: Agent, policy: ProbationPolicy | None = None, poll_s: float = 1.0
    ) -> None:
        self.agent = agent
        self.policy = policy or ProbationPolicy()
        self.poll_s = poll_s
        self.store = store_of(agent.config.bundle)
        manifest = agent.bundle.manifest
        self.state = ModelState(manifest.model_version, manifest.label)
        self.rejected: set[int] = set()
        self.swaps = 0
        self._pending: tuple[Bundle, VaeDetector, SpcDetector] | None = None
        self._probation: ProbationDetector | None = None
        self._before: tuple[Bundle, Any, SpcDetector] | None = None
        self._candidate: Bundle | None = None
        self._handled_failure = False
        self._wake = asyncio.Event()

    @property
    def probation(self) -> ProbationDetector | None:
        """The probation under way, if any."""
        return self._probation

    def at_boundary(self) -> None:
        """Called by the detection loop between two samples: apply a swap or a restore."""
        monitor = self.agent.monitor
        if self._pending is not None:
            bundle, vae, spc = self._pending
            self._pending = None
            self._before = (self.agent.bundle, monitor.vae, monitor.spc)
            self._candidate = bundle
            self._probation = ProbationDetector(vae, monitor.vae, self.policy)  # type: ignore[arg-type]
            self._handled_failure = False
            monitor.vae, monitor.spc = self._probation, spc
            self.swaps += 1
            version = bundle.manifest.model_version
            self._set("probation", f"model {version} swapped in, on probation")
        elif self._probation is not None and self._before is not None:
            if self._probation.failure is not None and not self._handled_failure:
                _bundle, vae, spc = self._before
                spc.reset()
                monitor.vae, monitor.spc = vae, spc
                self._handled_failure = True
                self._wake.set()
            elif self._probation.passed:
                monitor.vae = self._probation.candidate
                assert self._candidate is not None
                self.agent.bundle = self._candidate
                self._probation, self._before = None, None
                v = self._candidate.manifest
                self.state.version, self.state.label = v.model_version, v.label
                self._set("active", f"model {v.model_version} passed probation")

    def _set(self, status: str, text: str) -> None:
        self.state.status = status
        self.state.last_update = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {text}"
        failed = status == "rolled-back"
        log.log(logging.WARNING if failed else logging.INFO, "model update: %s", text)
        self.agent.journal.send(
            Event(
                ts=time.time(), line=self.agent.config.line, kind=EventKind.MODEL,
                state=EventState.RAISED if failed else EventState.CLEARED, detector="updates",
                severity=MODEL_SEVERITY, message=text,
                details={"status": status, "version": self.state.version},
            )
        )  # fmt: skip
        self._wake.set()

    def _load(self, version: int) -> tuple[Bundle, VaeDetector, SpcDetector]:
        assert self.store is not None
        bundle = load_bundle(self.store.version_dir(version))
        check_compat(bundle.manifest, None, self.agent.bundle.manifest)
        detection = self.agent.config.detection
        vae = VaeDetector(bundle, precision=detection.precision)
        spc = SpcDetector.from_manifest(bundle.manifest.spc, detection.flatline_samples)
        return bundle, vae, spc

    def _restore_link(self, failed: int, reason: str) -> None:
        assert self.store is not None
        with self.store.locked(wait_s=30):
            if self.store.current_version() == failed:
                self.store.rollback(to=self.state.version)
            self.store.audit(
                action="rolled-back", version=failed, to=self.state.version, reason=reason
            )

    async def _reject(self, version: int, reason: str) -> None:
        self.rejected.add(version)
        try:
            await asyncio.to_thread(self._restore_link, version, reason)
        except BundleError as exc:
            log.error("model %d: cannot restore the link on disk: %s", version, exc)
        self._set("rolled-back", f"model {version} rolled back to {self.state.version}: {reason}")

    async def _tick(self) -> None:
        assert self.store is not None
        probation = self._probation
        if probation is not None and probation.failure is not None and self._handled_failure:
            assert self._candidate is not None
            self._probation, self._before = None, None
            await self._reject(self._candidate.manifest.model_version, probation.failure)
            return
        if probation is not None or self._pending is not None:
            return
        version = self.store.current_version()
        if version is None or version == self.state.version or version in self.rejected:
            return
        try:
            self._pending = await asyncio.to_thread(self._load, version)
        except BundleError as exc:
            await self._reject(version, f"cannot load it: {exc}")

    async def run(self) -> None:
        """Publish the model state; watch the store until cancelled."""
        await publish_state(self.agent.scada, self.agent.config.line, self.state)
        if self.store is None:
            return
        while True:
            await self._tick()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            await publish_state(self.agent.scada, self.agent.config.line, self.state)
