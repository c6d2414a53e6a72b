"""The one factory of a line's detection pipeline: the live agent, a hot swap and offline
replay all build their detectors here, so what was measured offline is what runs on the line.
A line with no bundle gets its commissioning pipeline here too (`build_commissioning`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from agent.bundles.bundle import Bundle
from agent.bundles.manifest import LEGACY_FUSION, SHIFT_FUSIONS, Manifest
from agent.config import DetectionConfig, SiteConfig
from agent.core.codec import DataType
from agent.errors import BundleError, ConfigError
from agent.pipeline.commissioning import CommissioningLine
from agent.pipeline.detectors.shift import ShiftDetector
from agent.pipeline.detectors.spc import SpcDetector
from agent.pipeline.detectors.vae import VaeDetector, VaeModel
from agent.pipeline.forecasts import DriftForecaster
from agent.pipeline.learning import LearnedLimits
from agent.pipeline.line import LineMonitor


def clock_source(config: SiteConfig, channels: list[str]) -> str | None:
    """The source whose samples step detection: the one that reads the first model channel.

    With a single source every sample steps detection (None)."""
    sources = source_names(config)
    if len(set(sources.values())) <= 1:
        return None
    return sources.get(channels[0])


def source_names(config: SiteConfig) -> dict[str, str]:
    """Tag name -> the `source` its samples carry (`plc/device` for Modbus, `plc` for OPC-UA)."""
    names: dict[str, str] = {}
    for plc in config.plcs:
        if plc.opcua is not None:
            names.update({t.name: plc.name for t in plc.opcua.node_map.tags})
        for device in plc.devices:
            names.update({t.name: f"{plc.name}/{device.name}" for t in device.tag_map.tags})
    return names


def build_monitor(config: SiteConfig, bundle: Bundle) -> LineMonitor:
    """The detection pipeline of a site's line: its detection settings, and the source whose
    samples step detection."""
    clock = clock_source(config, bundle.manifest.channel_names)
    monitor = build_line(bundle, config.detection, config.line, clock)
    spec = {t.name: (t.lsl, t.usl) for t in config.tags.values()}
    monitor.forecaster = drift_forecaster(bundle.manifest, spec)
    return monitor


def build_line(
    bundle: Bundle, detection: DetectionConfig, line: str, clock: str | None = None
) -> LineMonitor:
    """The detection pipeline for a line, exactly as the live loop, a hot swap and offline
    replay use it: the bundle's detectors with the site's `[detection]`."""
    manifest = bundle.manifest
    smoothing = detection.smoothing if detection.smoothing is not None else manifest.smoothing
    monitor = LineMonitor(
        line=line,
        channels=manifest.channel_names,
        vae=VaeDetector(
            vae_model(bundle, detection),
            manifest.window,
            len(manifest.channels),
            manifest.hop,
            smoothing,
        ),
        spc=spc_detector(bundle, detection),
        detection=detection,
        clock=clock,
        fusion=shift_fusion(detection.fusion or manifest.fusion or LEGACY_FUSION, manifest),
        shift=shift_detector(manifest, detection),
    )
    monitor.forecaster = drift_forecaster(manifest)
    return monitor


def retarget_forecaster(monitor: LineMonitor, manifest: Manifest) -> None:
    """A hot swap's new bundle: its SPC limits for the line's forecasts (spec limits stay)."""
    if monitor.forecaster is not None:
        spc = manifest.spc
        center, sigma = np.asarray(spc.center), np.asarray(spc.sigma)
        low, high = center - spc.nsigmas * sigma, center + spc.nsigmas * sigma
        monitor.forecaster.set_limits(low, high, np.asarray(spc.mr_bar))


def drift_forecaster(
    manifest: Manifest, spec: Mapping[str, tuple[float | None, float | None]] | None = None
) -> DriftForecaster:
    """TimeToLimit for every channel: the bundle's SPC limits and the site's spec limits."""
    spc = manifest.spc
    center, sigma = np.asarray(spc.center), np.asarray(spc.sigma)
    return DriftForecaster(
        manifest.channel_names,
        center - spc.nsigmas * sigma,
        center + spc.nsigmas * sigma,
        np.asarray(spc.mr_bar),
        spec,
    )


def vae_model(bundle: Bundle, detection: DetectionConfig) -> VaeModel:
    """The bundle's VAE model in onnxruntime, at the site's precision."""
    return VaeModel(bundle, precision=detection.precision)


def spc_detector(bundle: Bundle, detection: DetectionConfig) -> SpcDetector:
    """The bundle's SPC charts with the site's flatline rule."""
    return SpcDetector.from_manifest(bundle.manifest.spc, detection.flatline_samples)


def shift_detector(manifest: Manifest, detection: DetectionConfig) -> ShiftDetector | None:
    """The bundle's shift detector, or None if it carries none."""
    if manifest.shift is None:
        return None
    return ShiftDetector(manifest.shift)


def shift_fusion(mode: str, manifest: Manifest) -> str:
    """`mode`, checked: a shift fusion on a bundle without `detector.shift` is refused."""
    if mode in SHIFT_FUSIONS and manifest.shift is None:
        raise BundleError(
            f"fusion {mode!r} needs a bundle with the shift detector ('detector.shift'); "
            "re-export the bundle with this version or set [detection] fusion to 'vae'"
        )
    return mode


def candidate_channels(config: SiteConfig) -> tuple[list[str], dict[str, str]]:
    """The tags a line without a model learns on, and the others with why not: strings and
    bits are never charted, and a tag-map entry can say `detect = false`."""
    learn: list[str] = []
    skipped: dict[str, str] = {}
    for tag in config.tags.values():
        dtype = getattr(tag, "dtype", None)
        if not tag.detect:
            skipped[tag.name] = (
                "detect = false in the tag map"
                if tag.role == "process"
                else f"role = {tag.role} in the tag map"
            )
        elif dtype is DataType.STRING:
            skipped[tag.name] = "a string tag"
        elif dtype is DataType.BOOL:
            skipped[tag.name] = "a bit (coil, discrete input or register bit)"
        else:
            learn.append(tag.name)
    return learn, skipped


def build_commissioning(config: SiteConfig, learned: LearnedLimits | None) -> CommissioningLine:
    """The pipeline of a line with no bundle: learn on the device (or resume what was learnt),
    then SPC and shift alarms on the learnt limits."""
    channels, _ = candidate_channels(config)
    if not channels:
        raise ConfigError(
            "plc",
            "no tag of the line can be learnt from: every tag is a string, a bit or has "
            "detect = false",
            "give at least one numeric tag detect = true (the default)",
            source=str(config.path),
        )
    clock = clock_source(config, channels)
    return CommissioningLine(
        config.line, channels, config.detection, config.learning, clock, learned
    )
