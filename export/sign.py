"""Golden inputs, signing keys, and the signed bundle file, on the workstation.

- `write_golden`: a few held-out windows and what each model answers on them, so the device
  can prove it runs the model the workstation tested (`golden.npz`, listed in the manifest).
- `keygen`: an ed25519 key pair, `<key id>.key` (mode 0600, stays here) and `<key id>.pub`
  (copy it into each device's trust directory).
- `sign_bundle`: a bundle directory -> one signed file (agent/bundles/archive.py has the layout).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundles import archive, signing
from agent.bundles.bundle import load_bundle
from agent.bundles.manifest import MANIFEST_NAME
from agent.errors import BundleError
from export.errors import ExportError
from export.parity import score_onnx

GOLDEN_NAME = "golden.npz"
GOLDEN_WINDOWS = 16
GOLDEN_RTOL = 1e-2
GOLDEN_ATOL = 1e-3


def write_golden(
    bundle_dir: Path, windows: npt.NDArray[np.float32], models: dict[str, str]
) -> dict[str, object]:
    """Write golden.npz (scaled windows and each model's outputs); return the manifest entry."""
    n = windows.shape[0]
    pick = np.unique(np.linspace(0, n - 1, num=min(GOLDEN_WINDOWS, n)).astype(int))
    x = np.ascontiguousarray(windows[pick], dtype=np.float32)
    arrays: dict[str, npt.NDArray[np.float32]] = {"x": x}
    for precision, name in models.items():
        score, contrib = score_onnx(bundle_dir / name, x)
        arrays[f"score_{precision}"] = score
        arrays[f"contrib_{precision}"] = contrib
    with (bundle_dir / GOLDEN_NAME).open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return {
        "file": GOLDEN_NAME,
        "windows": int(x.shape[0]),
        "rtol": GOLDEN_RTOL,
        "atol": GOLDEN_ATOL,
    }


def keygen(out: Path) -> tuple[Path, Path, str]:
    """Write a new key pair into `out`; return (private path, public path, key id)."""
    private = Ed25519PrivateKey.generate()
    kid = signing.key_id(private.public_key())
    out.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out / f"{kid}.key", out / f"{kid}.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise ExportError(f"{path} exists; refusing to overwrite a key")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signing.private_pem(private))
    pub_path.write_bytes(signing.public_pem(private.public_key()))
    return key_path, pub_path, kid


def sign_bundle(bundle_dir: Path, key: Path, out: Path) -> str:
    """Verify a bundle directory, sign its manifest bytes, write the bundle file; return key id."""
    try:
        bundle = load_bundle(bundle_dir)
    except BundleError as exc:
        raise ExportError(f"{bundle_dir}: not a valid bundle: {exc}") from exc
    try:
        private = signing.load_private_key(key)
    except (OSError, ValueError) as exc:
        raise ExportError(f"{key}: cannot read the signing key: {exc}") from exc
    manifest = (bundle_dir / MANIFEST_NAME).read_bytes()
    if bundle.manifest.golden is None:
        raise ExportError(
            f"{bundle_dir}: the manifest has no golden inputs; re-export it with this version "
            "of lineside-export"
        )
    signature = signing.sign_manifest(manifest, private)
    tmp = out.with_name(f".{out.name}.tmp")
    archive.write_archive(tmp, manifest, signature, bundle_dir, sorted(bundle.manifest.files))
    tmp.replace(out)
    return signing.key_id(private.public_key())
