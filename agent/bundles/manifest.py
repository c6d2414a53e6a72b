"""Model bundles: the manifest schema and loading a bundle directory with every hash checked.

A bundle directory holds `manifest.json` and the files it lists. Format 1:

    format            1 (an agent refuses a format it does not know)
    kind              "lineside-bundle"
    model_version     monotonic integer; `label` is for humans
    created_at        ISO 8601, UTC
    min_agent_version the oldest agent that can run it
    channels          [{"name", "unit"}] in model input order
    window, hop       samples per window, samples between windows
    scaler            {"kind": "robust", "center": [...], "scale": [...]} per channel
    spc               {"chart": "imr", "center", "sigma", "mr_bar": [...], "nsigmas": 3.0}
    detector          {"kind": "vae", "threshold": T, "threshold_method": "...",
                       optional "fusion" (agent.pipeline.events.fusion.FUSIONS) and "smoothing"
                       (EWMA weight of the newest score, in (0, 1]), optional "shift"
                       (agent.pipeline.detectors.shift.ShiftParams.to_dict, the drift-tolerant
                       detector; the fusions of SHIFT_FUSIONS need it)}
    models            {"fp32": "vae.onnx", "int8": "vae.int8.onnx"}
    files             {relative path: {"sha256", "size"}} for every other file in the bundle

Each ONNX model takes `x` float32 (batch, window, channels), already scaled, and returns
`score` float32 (batch,) and `contrib` float32 (batch, channels): the mean squared
reconstruction error per channel, and its mean over channels.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.errors import BundleError, BundleFormatError

BUNDLE_FORMAT = 1
MANIFEST_NAME = "manifest.json"


class FusionMode(StrEnum):
    """How a line's alarms fuse into its one anomaly decision (agent.pipeline.events.fusion)."""

    VAE = "vae"
    VAE_OR_SPC = "vae-or-spc"
    VAE_OR_SUSTAINED_SPC = "vae-or-sustained-spc"
    SHIFT = "shift"
    VAE_OR_SHIFT = "vae-or-shift"
    VAE_PLUS_SHIFT = "vae-plus-shift"


#: Every fusion mode's name, in the order the CLI and the errors list them.
FUSIONS = tuple(m.value for m in FusionMode)
#: The modes that need the shift detector (`detector.shift`) in the bundle.
SHIFT_FUSIONS = (FusionMode.SHIFT, FusionMode.VAE_OR_SHIFT, FusionMode.VAE_PLUS_SHIFT)
#: What a bundle exported before the field existed means: either alarm, as it always did.
LEGACY_FUSION = FusionMode.VAE_OR_SPC


@dataclass(frozen=True)
class ShiftParams:
    """What the export fits: watched channels, EWMA weights, per-channel scale, threshold."""

    channels: int
    watched: tuple[int, ...]
    fast: float
    slow: float
    scale: tuple[float, ...]
    threshold: float
    max_freeze: int = 3600
    method: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError("shift.channels must be at least 1")
        if not self.watched or len(set(self.watched)) != len(self.watched):
            raise ValueError("shift.watched must list distinct channel indices, at least one")
        if any(not 0 <= i < self.channels for i in self.watched):
            raise ValueError(f"shift.watched must be channel indices in [0, {self.channels})")
        if not 0.0 < self.slow < self.fast <= 1.0:
            raise ValueError("shift needs 0 < slow < fast <= 1 (EWMA weights)")
        if len(self.scale) != len(self.watched):
            raise ValueError("shift.scale must give one number per watched channel")
        if not all(math.isfinite(s) and s > 0 for s in self.scale):
            raise ValueError("shift.scale must be positive finite numbers")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError("shift.threshold must be a positive number")
        if self.max_freeze < 1:
            raise ValueError("shift.max_freeze must be at least 1 row")

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `detector.shift` object."""
        return {
            "channels": self.channels,
            "watched": list(self.watched),
            "fast": self.fast,
            "slow": self.slow,
            "scale": list(self.scale),
            "threshold": self.threshold,
            "max_freeze": self.max_freeze,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ShiftParams:
        """Parse `detector.shift`; ValueError names the bad field."""
        try:
            return cls(
                channels=int(raw["channels"]),
                watched=tuple(int(i) for i in raw["watched"]),
                fast=float(raw["fast"]),
                slow=float(raw["slow"]),
                scale=tuple(float(s) for s in raw["scale"]),
                threshold=float(raw["threshold"]),
                max_freeze=int(raw.get("max_freeze", 3600)),
                method=str(raw.get("method", "")),
            )
        except KeyError as exc:
            raise ValueError(f"shift.{exc.args[0]} is missing") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"shift: {exc}") from None


@dataclass(frozen=True)
class Channel:
    """One model input: a tag name and its engineering unit."""

    name: str
    unit: str


@dataclass(frozen=True)
class SpcLimits:
    """Per-channel Individuals/MR limits fitted in Phase I on normal data."""

    center: list[float]
    sigma: list[float]
    mr_bar: list[float]
    nsigmas: float


@dataclass(frozen=True)
class Manifest:
    """The parsed, validated manifest of a bundle."""

    model_version: int
    label: str
    created_at: str
    min_agent_version: str
    channels: list[Channel]
    window: int
    hop: int
    scaler: dict[str, list[float]]
    spc: SpcLimits
    threshold: float
    threshold_method: str
    models: dict[str, str]
    files: dict[str, dict[str, Any]]
    fusion: str | None = None
    smoothing: float = 1.0
    shift: ShiftParams | None = None

    @property
    def channel_names(self) -> list[str]:
        """Tag names in model input order."""
        return [c.name for c in self.channels]


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory and its manifest."""

    path: Path
    manifest: Manifest

    def model_path(self, precision: str = "int8") -> Path:
        """Path of the ONNX model of the given precision (`int8` or `fp32`)."""
        try:
            return self.path / self.manifest.models[precision]
        except KeyError:
            raise BundleError(
                f"{self.path}: manifest has no {precision!r} model "
                f"(it lists {sorted(self.manifest.models)})"
            ) from None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _need(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in raw:
        raise BundleError(f"manifest is missing {key!r}")
    value = raw[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BundleError(f"manifest field {key!r} has the wrong type ({type(value).__name__})")
    return value


def parse_manifest(raw: dict[str, Any]) -> Manifest:
    """Validate a manifest dict; raise BundleError naming the first bad field."""
    fmt = raw.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleFormatError(
            f"bundle format {fmt!r} is not supported by this agent (it reads format "
            f"{BUNDLE_FORMAT}); re-export the bundle or update the agent"
        )
    channels = [
        Channel(name=str(c["name"]), unit=str(c.get("unit", "")))
        for c in _need(raw, "channels", list)
    ]
    if not channels:
        raise BundleError("manifest field 'channels' is empty")
    n = len(channels)
    scaler = _need(raw, "scaler", dict)
    spc = _need(raw, "spc", dict)
    detector = _need(raw, "detector", dict)
    for name, values in (
        ("scaler.center", scaler.get("center")),
        ("scaler.scale", scaler.get("scale")),
        ("spc.center", spc.get("center")),
        ("spc.sigma", spc.get("sigma")),
        ("spc.mr_bar", spc.get("mr_bar")),
    ):
        if not isinstance(values, list) or len(values) != n:
            raise BundleError(f"manifest field {name!r} must list one number per channel ({n})")
    window = _need(raw, "window", int)
    hop = _need(raw, "hop", int)
    if window < 2 or hop < 1:
        raise BundleError(f"manifest window={window}, hop={hop}: need window >= 2 and hop >= 1")
    threshold = detector.get("threshold")
    if not isinstance(threshold, (int, float)) or not threshold > 0:
        raise BundleError("manifest field 'detector.threshold' must be a positive number")
    fusion = detector.get("fusion")
    if fusion is not None and fusion not in FUSIONS:
        raise BundleError(f"manifest field 'detector.fusion' must be one of {', '.join(FUSIONS)}")
    smoothing = detector.get("smoothing", 1.0)
    if not isinstance(smoothing, (int, float)) or isinstance(smoothing, bool):
        raise BundleError("manifest field 'detector.smoothing' must be a number in (0, 1]")
    if not 0.0 < smoothing <= 1.0:
        raise BundleError("manifest field 'detector.smoothing' must be a number in (0, 1]")
    shift = _shift(detector.get("shift"), n, fusion)
    return Manifest(
        model_version=_need(raw, "model_version", int),
        label=str(raw.get("label", "")),
        created_at=str(raw.get("created_at", "")),
        min_agent_version=str(raw.get("min_agent_version", "0")),
        channels=channels,
        window=window,
        hop=hop,
        scaler={"center": scaler["center"], "scale": scaler["scale"]},
        spc=SpcLimits(
            center=[float(v) for v in spc["center"]],
            sigma=[float(v) for v in spc["sigma"]],
            mr_bar=[float(v) for v in spc["mr_bar"]],
            nsigmas=float(spc.get("nsigmas", 3.0)),
        ),
        threshold=float(threshold),
        threshold_method=str(detector.get("threshold_method", "")),
        models=dict(_need(raw, "models", dict)),
        files=dict(_need(raw, "files", dict)),
        fusion=fusion,
        smoothing=float(smoothing),
        shift=shift,
    )


def _shift(raw: object, channels: int, fusion: str | None) -> ShiftParams | None:
    """`detector.shift`, validated; required when the bundle's fusion uses it."""
    if raw is None:
        if fusion in SHIFT_FUSIONS:
            raise BundleError(f"manifest fusion {fusion!r} needs the field 'detector.shift'")
        return None
    if not isinstance(raw, dict):
        raise BundleError("manifest field 'detector.shift' must be an object")
    try:
        params = ShiftParams.from_dict(raw)
    except ValueError as exc:
        raise BundleError(f"manifest field 'detector.shift' is invalid: {exc}") from None
    if params.channels != channels:
        raise BundleError(f"manifest field 'detector.shift.channels' must be {channels}")
    return params


def load_bundle(path: Path) -> Bundle:
    """Read a bundle directory, check its manifest and the sha256 and size of every file."""
    manifest_path = path / MANIFEST_NAME
    if not path.is_dir():
        raise BundleError(f"{path}: bundle directory does not exist")
    if not manifest_path.is_file():
        raise BundleError(f"{path}: no {MANIFEST_NAME} in the bundle directory")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: cannot read manifest: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundleError(f"{manifest_path}: manifest must be a JSON object")
    manifest = parse_manifest(raw)
    for model in manifest.models.values():
        if model not in manifest.files:
            raise BundleError(f"{path}: model file {model!r} has no sha256 entry in 'files'")
    for rel, entry in manifest.files.items():
        file = path / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleError(f"{path}: file entry {rel!r} escapes the bundle directory")
        if not file.is_file():
            raise BundleError(f"{path}: file {rel!r} listed in the manifest is missing")
        if file.stat().st_size != entry.get("size"):
            raise BundleError(
                f"{path}: file {rel!r} is {file.stat().st_size} bytes, manifest says "
                f"{entry.get('size')}"
            )
        if sha256_file(file) != entry.get("sha256"):
            raise BundleError(f"{path}: file {rel!r} does not match its sha256 in the manifest")
    return Bundle(path=path, manifest=manifest)
