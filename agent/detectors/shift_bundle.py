"""The shift detector (agent.detectors.shift) of a bundle, as the live monitor builds it."""

from __future__ import annotations

from agent.config import DetectionConfig
from agent.detectors.fusion import SHIFT_FUSIONS
from agent.detectors.shift import ShiftDetector
from agent.errors import BundleError
from agent.ops.bundles import Manifest


def shift_detector(manifest: Manifest, detection: DetectionConfig) -> ShiftDetector | None:
    """The bundle's shift detector with the site's debounce, or None if it carries none."""
    if manifest.shift is None:
        return None
    return ShiftDetector(manifest.shift, detection.raise_after, detection.clear_after)


def shift_fusion(mode: str, manifest: Manifest) -> str:
    """`mode`, checked: a shift fusion on a bundle without `detector.shift` is refused."""
    if mode in SHIFT_FUSIONS and manifest.shift is None:
        raise BundleError(
            f"fusion {mode!r} needs a bundle with the shift detector ('detector.shift'); "
            "re-export the bundle with this version or set [detection] fusion to 'vae'"
        )
    return mode
