"""Helpers for update tests: keys, signed bundle files built from a real exported bundle."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bundles.signing import TrustStore
from agent.bundles.store import ModelStore
from export.sign import keygen, sign_bundle


def make_keys(root: Path, name: str = "keys") -> tuple[Path, TrustStore, Path]:
    """A key pair; returns (private key, trust store holding the public key, trust dir)."""
    keys = root / name
    key, pub, _kid = keygen(keys)
    trust_dir = root / f"{name}-trust"
    trust_dir.mkdir()
    shutil.copy(pub, trust_dir / pub.name)
    return key, TrustStore.load(trust_dir), trust_dir


def variant(
    bundle_dir: Path, out: Path, version: int, edit: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    """A copy of a bundle directory with another model_version (and any manifest edit)."""
    shutil.copytree(bundle_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["model_version"] = version
    manifest["label"] = f"v{version}"
    if edit is not None:
        edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def signed(
    bundle_dir: Path,
    key: Path,
    work: Path,
    version: int,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """A signed bundle file of `bundle_dir` as model `version`."""
    src = variant(bundle_dir, work / f"dir-v{version}-{len(list(work.iterdir()))}", version, edit)
    out = work / f"model-v{version}-{len(list(work.iterdir()))}.bundle"
    sign_bundle(src, key, out)
    return out


def resign_dir(src: Path, key: Path, out: Path) -> Path:
    """Re-hash every file of a bundle directory into its manifest, then sign it into `out`."""
    import hashlib

    manifest = json.loads((src / "manifest.json").read_text())
    names = sorted(
        p.relative_to(src).as_posix()
        for p in src.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    manifest["files"] = {
        n: {"sha256": hashlib.sha256((src / n).read_bytes()).hexdigest(),
            "size": (src / n).stat().st_size}
        for n in names
    }  # fmt: skip
    (src / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sign_bundle(src, key, out)
    return out


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Every member of a tar file with its content."""
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]  # type: ignore[union-attr]


def rewrite(path: Path, out: Path, items: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """Write a tar file from (member, content) pairs, exactly in that order."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out


def flip_member_byte(path: Path, out: Path, name: str, offset: int | None = None) -> Path:
    """A copy of a bundle file with one byte of one member's content inverted, in place."""
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as tar:
        member = tar.getmember(name)
    at = member.offset_data + (member.size // 2 if offset is None else offset)
    data[at] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def installed_store(root: Path, bundle_file: Path, trust: TrustStore) -> ModelStore:
    """A store with one bundle installed through the real installer."""
    from agent.bundles.install import install_file

    store = ModelStore(root)
    install_file(bundle_file, store, trust)
    return store
