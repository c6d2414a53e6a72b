"""The bundle manifest, format 1: the one schema the export writes (`Manifest.to_dict`) and
the device reads (`Manifest.from_dict`, `parse_manifest`). Loading a bundle directory with
every hash checked is agent.bundles.bundle.

    format            1 (an agent refuses a format it does not know)
    kind              "lineside-bundle"
    model_version     monotonic integer; `label` is for humans
    created_at        ISO 8601, UTC
    min_agent_version the oldest agent that can run it
    channels          [{"name", "unit"}] in model input order
    window, hop       samples per window, samples between windows
    scaler            {"kind": "robust", "center": [...], "scale": [...]} per channel
    spc               {"chart": "imr", "center", "sigma", "mr_bar": [...], "nsigmas": 3.0,
                       "sigma_method": [...]}
    detector          {"kind": "vae", "model", "threshold": T, "threshold_method": "...",
                       optional "fusion" (FUSIONS) and "smoothing" (EWMA weight of the newest
                       score, in (0, 1]), "fusion_basis", "shift" (ShiftParams.to_dict and its
                       "fit" record, or null: the drift-tolerant detector; the fusions of
                       SHIFT_FUSIONS need it), then the export's record of how the model scores}
    models            {"fp32": "vae.onnx", "int8": "vae.int8.onnx"}
    files             {relative path: {"sha256", "size"}} for every other file in the bundle
    training          the export's record of the training run ("correlation" for the explainer)
    golden            {"file", "windows", "rtol", "atol"}: inputs and outputs the device replays

Each ONNX model takes `x` float32 (batch, window, channels), already scaled, and returns
`score` float32 (batch,) and `contrib` float32 (batch, channels): the mean squared
reconstruction error per channel, and its mean over channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent.errors import BundleError, BundleFormatError

BUNDLE_FORMAT = 1
MANIFEST_NAME = "manifest.json"
BUNDLE_KIND = "lineside-bundle"
DETECTOR_KIND = "vae"
SCALER_KIND = "robust"


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
    #: Per channel, which sigma the limits use ("moving-range" or "overall"); a record only.
    sigma_method: tuple[str, ...] = ()
    chart: str = "imr"

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `spc` object."""
        return {
            "chart": self.chart,
            "center": list(self.center),
            "sigma": list(self.sigma),
            "mr_bar": list(self.mr_bar),
            "nsigmas": self.nsigmas,
            "sigma_method": list(self.sigma_method),
        }


@dataclass(frozen=True)
class Manifest:
    """The parsed, validated manifest of a bundle: what the device runs on, and what the export
    recorded beside it, so that `to_dict` writes the manifest back key for key."""

    model_version: int
    label: str
    created_at: str
    min_agent_version: str
    channels: list[Channel]
    window: int
    hop: int
    scaler: dict[str, Any]
    spc: SpcLimits
    threshold: float
    threshold_method: str
    models: dict[str, str]
    files: dict[str, dict[str, Any]]
    fusion: str | None = None
    smoothing: float = 1.0
    shift: ShiftParams | None = None
    # Records the device does not act on (the golden run reads `golden`, the explainer
    # `training.correlation`); from_dict keeps them, whatever they hold, and never refuses them.
    kind: str = BUNDLE_KIND
    detector_kind: str = DETECTOR_KIND
    model: str = ""  # `detector.model`: vae or vae-gan (export/pipeline.py MODELS)
    fusion_basis: dict[str, Any] | None = None  # why the export chose `fusion`
    shift_fit: dict[str, Any] | None = None  # `detector.shift.fit`: the record of the fit
    scoring: dict[str, Any] = field(default_factory=dict)  # the rest of `detector`, in order
    training: dict[str, Any] = field(default_factory=dict)
    golden: dict[str, Any] | None = None

    @property
    def channel_names(self) -> list[str]:
        """Tag names in model input order."""
        return [c.name for c in self.channels]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
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
            raise BundleError(
                f"manifest field 'detector.fusion' must be one of {', '.join(FUSIONS)}"
            )
        smoothing = detector.get("smoothing", 1.0)
        if not isinstance(smoothing, (int, float)) or isinstance(smoothing, bool):
            raise BundleError("manifest field 'detector.smoothing' must be a number in (0, 1]")
        if not 0.0 < smoothing <= 1.0:
            raise BundleError("manifest field 'detector.smoothing' must be a number in (0, 1]")
        shift = _shift(detector.get("shift"), n, fusion)
        sigma_method = spc.get("sigma_method")
        return cls(
            model_version=_need(raw, "model_version", int),
            label=str(raw.get("label", "")),
            created_at=str(raw.get("created_at", "")),
            min_agent_version=str(raw.get("min_agent_version", "0")),
            channels=channels,
            window=window,
            hop=hop,
            scaler={
                "kind": str(scaler.get("kind", SCALER_KIND)),
                "center": scaler["center"],
                "scale": scaler["scale"],
            },
            spc=SpcLimits(
                center=[float(v) for v in spc["center"]],
                sigma=[float(v) for v in spc["sigma"]],
                mr_bar=[float(v) for v in spc["mr_bar"]],
                nsigmas=float(spc.get("nsigmas", 3.0)),
                sigma_method=tuple(map(str, sigma_method))
                if isinstance(sigma_method, list)
                else (),
                chart=str(spc.get("chart", "imr")),
            ),
            threshold=float(threshold),
            threshold_method=str(detector.get("threshold_method", "")),
            models=dict(_need(raw, "models", dict)),
            files=dict(_need(raw, "files", dict)),
            fusion=fusion,
            smoothing=float(smoothing),
            shift=shift,
            kind=str(raw.get("kind", BUNDLE_KIND)),
            detector_kind=str(detector.get("kind", DETECTOR_KIND)),
            model=str(detector.get("model", "")),
            fusion_basis=_object(detector.get("fusion_basis")),
            shift_fit=_object(detector["shift"].get("fit")) if shift is not None else None,
            scoring={k: v for k, v in detector.items() if k not in _DETECTOR_FIELDS},
            training=_object(raw.get("training")) or {},
            golden=_object(raw.get("golden")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The format-1 JSON object, in the order the export writes it (json.dumps-able)."""
        detector: dict[str, Any] = {"kind": self.detector_kind}
        if self.model:
            detector["model"] = self.model
        detector["threshold"] = self.threshold
        detector["threshold_method"] = self.threshold_method
        detector["smoothing"] = self.smoothing
        if self.fusion is not None:
            detector["fusion"] = self.fusion
        if self.fusion_basis is not None:
            detector["fusion_basis"] = self.fusion_basis
        shift = None if self.shift is None else self.shift.to_dict()
        if shift is not None and self.shift_fit is not None:
            shift["fit"] = self.shift_fit
        detector["shift"] = shift  # null: the export found no channel to watch
        detector.update(self.scoring)
        raw: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "kind": self.kind,
            "model_version": self.model_version,
            "label": self.label,
            "created_at": self.created_at,
            "min_agent_version": self.min_agent_version,
            "channels": [{"name": c.name, "unit": c.unit} for c in self.channels],
            "window": self.window,
            "hop": self.hop,
            "scaler": {
                "kind": self.scaler.get("kind", SCALER_KIND),
                "center": self.scaler["center"],
                "scale": self.scaler["scale"],
            },
            "spc": self.spc.to_dict(),
            "detector": detector,
            "models": dict(self.models),
            "files": dict(self.files),
            "training": self.training,
        }
        if self.golden is not None:
            raw["golden"] = self.golden  # inputs and outputs the device replays (checks.py)
        return raw


#: The keys of `detector` that Manifest has a field of; the others are kept in `scoring`.
_DETECTOR_FIELDS = frozenset(
    (
        "kind",
        "model",
        "threshold",
        "threshold_method",
        "smoothing",
        "fusion",
        "fusion_basis",
        "shift",
    )
)


def _object(value: object) -> dict[str, Any] | None:
    """A JSON object as a dict, anything else as None (for the records from_dict keeps)."""
    return value if isinstance(value, dict) else None


def _need(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in raw:
        raise BundleError(f"manifest is missing {key!r}")
    value = raw[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BundleError(f"manifest field {key!r} has the wrong type ({type(value).__name__})")
    return value


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


def parse_manifest(raw: dict[str, Any]) -> Manifest:
    """Validate a manifest dict (Manifest.from_dict); raise BundleError naming the bad field."""
    return Manifest.from_dict(raw)
