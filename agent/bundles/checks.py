"""The checks between the signature and the install: manifest, version, fit, golden run.

Each raises `UpdateRefused` with its own `Refusal`, so the caller can say exactly why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agent import __version__
from agent.bundles import archive
from agent.bundles.bundle import load_bundle
from agent.bundles.jsonbounds import parse_json
from agent.bundles.manifest import MANIFEST_NAME, Manifest, parse_manifest
from agent.bundles.refusals import Refusal, UpdateRefused, shown
from agent.config import NodeTag, SiteConfig, Tag
from agent.core.codec import DataType
from agent.errors import BundleError, BundleFormatError, ConfigError
from agent.pipeline.golden import FLOAT_PRECISION, GoldenUnreadable, golden_arrays, run_golden

log = logging.getLogger(__name__)
HEX_DIGITS = "0123456789abcdef"
#: The largest manifest.json read (archive.Limits.max_manifest_bytes has the same default).
MAX_MANIFEST_BYTES = 1 << 20


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        raise UpdateRefused(
            Refusal.BAD_MANIFEST, f"min_agent_version {shown(text)} is not like 0.1.0"
        ) from None


def parse_head(manifest_bytes: bytes) -> tuple[dict[str, Any], Manifest]:
    """Parse signed manifest bytes; refuse an unknown format or a malformed field."""
    raw = parse_json(manifest_bytes, MANIFEST_NAME, Refusal.BAD_MANIFEST, MAX_MANIFEST_BYTES)
    if not isinstance(raw, dict):
        raise UpdateRefused(Refusal.BAD_MANIFEST, f"{MANIFEST_NAME} is not a JSON object")
    try:
        manifest = parse_manifest(raw)
    except BundleFormatError as exc:
        raise UpdateRefused(Refusal.UNKNOWN_FORMAT, str(exc)) from None
    except (BundleError, LookupError, TypeError, ValueError, ArithmeticError) as exc:
        raise UpdateRefused(Refusal.BAD_MANIFEST, str(exc) or type(exc).__name__) from None
    _check_listing(manifest)
    if _version_tuple(manifest.min_agent_version) > _version_tuple(__version__):
        raise UpdateRefused(
            Refusal.AGENT_TOO_OLD,
            f"the bundle needs agent {shown(manifest.min_agent_version)} or newer; this is "
            f"{__version__}: update the agent first",
        )
    return raw, manifest


def _check_listing(manifest: Manifest) -> None:
    """`files`, `models` and `golden` name safe paths, each listed with a sha256 and a size."""
    for rel, entry in manifest.files.items():
        archive.safe_member_name(rel)
        if not isinstance(entry, dict):
            raise UpdateRefused(
                Refusal.BAD_MANIFEST, f"files entry {shown(rel)} is not an object with sha256, size"
            )
        sha, size = entry.get("sha256"), entry.get("size")
        if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set(HEX_DIGITS)):
            raise UpdateRefused(
                Refusal.BAD_MANIFEST, f"files entry {shown(rel)} has no 64-digit hex sha256"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UpdateRefused(
                Refusal.BAD_MANIFEST, f"files entry {shown(rel)} has no size in bytes"
            )
    for precision, model in manifest.models.items():
        if not isinstance(model, str) or model not in manifest.files:
            raise UpdateRefused(
                Refusal.BAD_MANIFEST, f"model {shown(precision)} has no entry in 'files'"
            )
    golden = manifest.golden
    if golden is not None:
        if not isinstance(golden.get("file"), str):
            raise UpdateRefused(Refusal.BAD_MANIFEST, "golden.file must be a file name")
        for key in ("rtol", "atol"):
            value = golden.get(key, 0.0)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise UpdateRefused(Refusal.BAD_MANIFEST, f"golden.{key} must be a number")


def check_version(manifest: Manifest, floor: int, allow_downgrade: bool) -> bool:
    """Refuse a version not above `floor` unless overridden; True if the override was used."""
    if manifest.model_version > floor:
        return False
    if not allow_downgrade:
        raise UpdateRefused(
            Refusal.DOWNGRADE,
            f"model version {manifest.model_version} is not above {floor}, the highest "
            "installed here (pass --allow-downgrade to install it anyway; it is logged)",
        )
    log.warning("downgrade override: installing model %d over %d", manifest.model_version, floor)
    return True


#: The fix for a model channel the tag map keeps out of detection.
UNDETECTED_FIX = (
    "retrain without them (lineside-export train --tag-map leaves them out) or set "
    "detect = true on them in the tag map"
)


def undetected_channels(channels: list[str], tags: dict[str, Tag | NodeTag]) -> str:
    """The problem with model channels the tag map keeps out of detection (`detect = false`,
    or a role such as setpoint), naming each and why; an empty string when there are none."""
    marked = [
        f"{c} ({'detect = false' if tags[c].role == 'process' else f'role = {tags[c].role!r}'})"
        for c in channels
        if c in tags and not tags[c].detect
    ]
    if not marked:
        return ""
    return f"model channels {', '.join(marked)} are kept out of detection in the tag map"


def check_compat(manifest: Manifest, site: SiteConfig | None, running: Manifest | None) -> None:
    """Channels must be numeric tags of the site, in detection, and match the running model;
    same window."""
    if site is not None:
        missing = [c for c in manifest.channel_names if c not in site.tags]
        if missing:
            raise UpdateRefused(
                Refusal.INCOMPATIBLE,
                f"channels {missing} are not tags of line {site.line} in {site.path.name}",
            )
        undetected = undetected_channels(manifest.channel_names, site.tags)
        if undetected:
            raise UpdateRefused(Refusal.INCOMPATIBLE, f"{undetected}: {UNDETECTED_FIX}")
    if running is None:
        return
    for what, new, old in (
        ("channels", [(c.name, c.unit) for c in manifest.channels],
         [(c.name, c.unit) for c in running.channels]),
        ("window", manifest.window, running.window),
        ("hop", manifest.hop, running.hop),
    ):  # fmt: skip
        if new != old:
            raise UpdateRefused(
                Refusal.INCOMPATIBLE,
                f"{what} {new} differ from the running model's {old}; a hot swap needs the "
                "same channels (names, units, order), window and hop",
            )


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_models(bundle_dir: Path, manifest: Manifest) -> list[str]:
    """Run every ONNX model on the golden inputs, on this CPU, and compare with the expected
    outputs; refuse a model that does not load, returns NaN, or (fp32) differs. An int8 model
    that differs here is not refused: the agent runs fp32 instead (agent.pipeline.golden), and
    the returned warnings say so."""
    try:
        arrays = golden_arrays(bundle_dir, manifest)
    except GoldenUnreadable as exc:
        raise UpdateRefused(Refusal.NO_GOLDEN, str(exc)) from None
    if arrays is None:
        raise UpdateRefused(
            Refusal.NO_GOLDEN,
            "the manifest names no golden inputs ('golden.file'); re-export the bundle",
        )
    if FLOAT_PRECISION not in manifest.models:
        raise UpdateRefused(
            Refusal.BAD_MANIFEST, "the bundle ships no fp32 model, which every agent can run"
        )
    warnings: list[str] = []
    for precision, name in sorted(manifest.models.items()):
        try:
            result = run_golden(_session(bundle_dir / name), arrays, precision, name, manifest)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UpdateRefused(
                Refusal.MODEL_LOAD, f"{name} does not load or run in onnxruntime: {first}"
            ) from None
        if not result.finite:
            raise UpdateRefused(
                Refusal.NON_FINITE, f"{name} returns NaN or infinity on the golden inputs"
            )
        if not result.problem:
            continue
        if precision == FLOAT_PRECISION:
            raise UpdateRefused(Refusal.GOLDEN_MISMATCH, f"{name} {result.problem}")
        warning = f"{name} {result.problem}: this device runs the fp32 model instead"
        log.warning("%s", warning)
        warnings.append(warning)
    if "int8" not in manifest.models:
        warnings.append("the bundle ships no int8 model (refused at export): it runs as fp32")
    return warnings


def check_bundle_fits(config: SiteConfig, field: str = "model.bundle") -> None:
    """The bundle must exist, verify, and find every model channel among the line's tags,
    none of them kept out of detection by the tag map. A site with no bundle (commissioning
    mode) has nothing to check here."""
    if config.bundle is None:
        return
    try:
        bundle = load_bundle(config.bundle)
    except BundleError as exc:
        raise ConfigError(
            field, str(exc), "point model.bundle at a bundle directory made by lineside-export",
            source=str(config.path),
        ) from None  # fmt: skip
    tags = config.tags
    missing = [c for c in bundle.manifest.channel_names if c not in tags]
    if missing:
        raise ConfigError(
            field,
            f"model channels {missing} are not tags of any PLC of this line",
            "add them to a tag map or use a bundle trained on this line's tags",
            source=str(config.path),
        )
    texts = [
        c for c in bundle.manifest.channel_names
        if isinstance(tags[c], Tag) and tags[c].dtype is DataType.STRING  # type: ignore[union-attr]
    ]  # fmt: skip
    if texts:
        raise ConfigError(
            field, f"model channels {texts} are string tags", "a model reads numbers only",
            source=str(config.path),
        )  # fmt: skip
    undetected = undetected_channels(bundle.manifest.channel_names, tags)
    if undetected:
        raise ConfigError(field, undetected, UNDETECTED_FIX, source=str(config.path))
