"""A bundle directory: its manifest (agent.bundles.manifest) and every file it lists, each
checked against its sha256 and size before anything is loaded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from agent.bundles.manifest import MANIFEST_NAME, Manifest, parse_manifest
from agent.errors import BundleError


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
