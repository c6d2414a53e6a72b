"""Hot swap of the running model when the store's `current` link moves, with probation.

The service polls `current` (a readlink, once a second). A new version is loaded and its
hashes checked in a worker thread; the detection loop then swaps it in between two samples
(`at_boundary`), keeping its window, so no cycle is dropped and no window is scored half by
one model. During probation the old model scores in shadow (agent/runtime/probation.py); when the
new one fails, the loop goes back to the old one at the next sample and the service points
`current` back at the old version on disk, writes the audit log and the journal, and says why
on the OPC-UA tags. The highest-version record is left alone, so the failed version cannot be
installed again; a fixed bundle needs a higher version.

Like an A/B updater's boot counter, the installer leaves a probation marker that only a pass
clears. An agent that starts on a version still under probation resumes it (the previous
version in shadow); after `MAX_BOOTS` starts without a pass (a model that crashes the agent)
`boot_check` goes back to the previous version before the model is even loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.bundles.bundle import Bundle, load_bundle
from agent.bundles.checks import check_compat
from agent.bundles.store import ModelStore
from agent.config import DetectionConfig
from agent.errors import BundleError
from agent.pipeline.build import (
    retarget_forecaster,
    shift_detector,
    shift_fusion,
    spc_detector,
    vae_model,
)
from agent.pipeline.detectors.base import WindowModel
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.line import LineMonitor
from agent.runtime.probation import ProbationDetector, ProbationPolicy

log = logging.getLogger(__name__)
MAX_BOOTS = 2
Loaded = tuple[Bundle, WindowModel, SpcDetector]  # a bundle with its VAE model and SPC charts


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


def boot_check(bundle_path: Path) -> None:
    """At agent start: count a start of an unproven version; go back after MAX_BOOTS."""
    store = store_of(bundle_path)
    if store is None:
        return
    try:
        with store.locked(wait_s=30):
            marker = store.count_boot()
            if marker is None or marker["boots"] <= MAX_BOOTS:
                return
            now, back = store.rollback(to=marker["previous"])
            store.clear_marker()
            reason = f"the agent started {marker['boots']} times without model {now} passing"
            store.audit(action="rolled-back", version=now, to=back, reason=reason)
            log.warning("model %d rolled back to %d at start: %s", now, back, reason)
    except (BundleError, OSError) as exc:
        log.error("probation marker of %s: %s", store.models, exc)


#: Told of every change of the running model: (old version, new version, what happened,
#: status); the agent journals it and names the new version in STATUS= and journal rows.
ModelChanged = Callable[[str, str, str, str], None]
#: Hands the model state to SCADA (ModelVersion, ModelStatus, ModelLastUpdate).
PublishState = Callable[[ModelState], None]


class ModelUpdates:
    """Watches the model store and swaps, probates and rolls back models in a running agent."""

    def __init__(
        self,
        monitor: LineMonitor,
        bundle: Bundle,
        bundle_path: Path,
        detection: DetectionConfig,
        on_change: ModelChanged,
        publish: PublishState,
        policy: ProbationPolicy | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.monitor = monitor
        #: The bundle the line runs on now (the candidate's once it passes probation).
        self.bundle = bundle
        self.detection = detection
        self.on_change = on_change
        self.publish = publish
        self.policy = policy or ProbationPolicy()
        self.poll_s = poll_s
        self.store = store_of(bundle_path)
        manifest = bundle.manifest
        self.state = ModelState(manifest.model_version, manifest.label)
        self.rejected: set[int] = set()
        self.swaps = 0
        self._pending: Loaded | None = None
        self._probation: ProbationDetector | None = None
        self._before: Loaded | None = None
        self._candidate: Bundle | None = None
        self._restored = False
        self._passed: int | None = None
        self._wake = asyncio.Event()
        self._resume()

    @property
    def probation(self) -> ProbationDetector | None:
        """The probation under way, if any."""
        return self._probation

    def _resume(self) -> None:
        """Started on a version still under probation: carry on, the previous one in shadow."""
        marker = self.store.read_marker() if self.store is not None else None
        if marker is None:
            return
        try:
            before = self._load(marker["previous"])
        except BundleError as exc:
            log.error("cannot resume probation, previous model unusable: %s", exc)
            return
        monitor = self.monitor
        self._start(
            (self.bundle, monitor.bundle_vae.model, monitor.spc), before, "resumed after restart"
        )

    def _start(self, candidate: Loaded, incumbent: Loaded, how: str) -> None:
        monitor = self.monitor
        bundle, model, spc = candidate
        self._before, self._candidate, self._restored = incumbent, bundle, False
        self._probation = ProbationDetector(model, incumbent[1], self.policy)
        monitor.bundle_vae.model, monitor.spc = self._probation, spc  # the window carries on
        monitor.replace_shift(shift_detector(bundle.manifest, self.detection))
        retarget_forecaster(monitor, bundle.manifest)
        old = self.state.version
        self.state.version, self.state.label = bundle.manifest.model_version, bundle.manifest.label
        self._set(old, "probation", f"model {bundle.manifest.model_version} {how}, on probation")

    def at_boundary(self) -> None:
        """Called by the detection loop between two samples: apply a swap or a restore."""
        monitor = self.monitor
        if self._pending is not None:
            candidate, self._pending = self._pending, None
            self.swaps += 1
            self._start(
                candidate, (self.bundle, monitor.bundle_vae.model, monitor.spc), "swapped in"
            )
        elif self._probation is not None and self._before is not None:
            if self._probation.failure is not None and not self._restored:
                bundle, model, spc = self._before
                spc.reset()  # its last row is from before the swap
                monitor.bundle_vae.model, monitor.spc = model, spc
                monitor.replace_shift(shift_detector(bundle.manifest, self.detection))
                retarget_forecaster(monitor, bundle.manifest)
                self.bundle = bundle
                self._restored = True
                self._wake.set()
            elif self._probation.passed:
                assert self._candidate is not None
                monitor.bundle_vae.model = self._probation.candidate
                self.bundle = self._candidate
                self._probation, self._before = None, None
                self._passed = self._candidate.manifest.model_version
                self._set(self._passed, "active", f"model {self._passed} passed probation")

    def _set(self, old: int, status: str, text: str) -> None:
        self.state.status = status
        self.state.last_update = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {text}"
        failed = status == "rolled-back"
        log.log(logging.WARNING if failed else logging.INFO, "model update: %s", text)
        self.on_change(str(old), str(self.state.version), text, status)
        self._wake.set()

    def _load(self, version: int) -> Loaded:
        assert self.store is not None
        bundle = load_bundle(self.store.version_dir(version))
        check_compat(bundle.manifest, None, self.bundle.manifest)
        shift_fusion(self.monitor.fusion.mode, bundle.manifest)  # BundleError: refused
        return bundle, vae_model(bundle, self.detection), spc_detector(bundle, self.detection)

    def _clear_marker(self, version: int) -> None:
        assert self.store is not None
        with self.store.locked(wait_s=30):
            self.store.clear_marker(version)

    def _restore_link(self, failed: int, to: int, reason: str) -> None:
        assert self.store is not None
        with self.store.locked(wait_s=30):
            if self.store.current_version() == failed:
                self.store.rollback(to=to)
            self.store.clear_marker(failed)
            self.store.audit(action="rolled-back", version=failed, to=to, reason=reason)

    async def _reject(self, version: int, to: int, label: str, reason: str) -> None:
        self.rejected.add(version)
        try:
            await asyncio.to_thread(self._restore_link, version, to, reason)
        except (BundleError, OSError) as exc:
            log.error("model %d: cannot restore the link on disk: %s", version, exc)
        self.state.version, self.state.label = to, label
        self._set(version, "rolled-back", f"model {version} rolled back to {to}: {reason}")

    async def _tick(self) -> None:
        assert self.store is not None
        probation = self._probation
        if self._passed is not None:
            passed, self._passed = self._passed, None
            await asyncio.to_thread(self._clear_marker, passed)
        if probation is not None and probation.failure is not None and self._restored:
            assert self._candidate is not None and self._before is not None
            back = self._before[0].manifest
            self._probation, self._before = None, None
            await self._reject(
                self._candidate.manifest.model_version,
                back.model_version,
                back.label,
                probation.failure,
            )
            return
        if probation is not None or self._pending is not None:
            return
        version = self.store.current_version()
        if version is None or version == self.state.version or version in self.rejected:
            return
        try:
            self._pending = await asyncio.to_thread(self._load, version)
        except BundleError as exc:
            m = self.bundle.manifest
            await self._reject(version, m.model_version, m.label, f"cannot load it: {exc}")

    async def run(self) -> None:
        """Publish the model state; watch the store until cancelled."""
        self.publish(self.state)
        if self.store is None:
            return
        while True:
            await self._tick()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            self.publish(self.state)
