"""Helpers for update tests: keys, signed bundle files built from a real exported bundle.

`build_kit` is what the `kit` fixture (tests/conftest.py) hands every update test."""

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


def build_kit(bundle_dir: Path, work: Path, *, cli: bool = False) -> dict[str, Any]:
    """Keys and signed bundle files of `bundle_dir`: what the update tests start from.

    - `key` signs; `other_key` is a second key that nothing trusts;
    - `trust` (a TrustStore) and `trust_dir` (its folder) hold the public key of `key`;
    - `v1`, `v2`, `v3`: bundle files of `bundle_dir` as models 1, 2 and 3, signed with `key`;
    - `template`: the root of a store with v1 installed (copy it, never change it);
    - `files`: the folder the bundle files are in (sign more into it); `bundle`: `bundle_dir`;
    - `bytes`: how many bytes installing v2 writes (the copy of the file, then its members).

    With `cli`, the key and v1..v3 come from `lineside-export keygen` and `sign` themselves
    (each must exit 0), as an operator makes them."""
    files = work / "files"
    files.mkdir()
    if cli:
        key, trust, trust_dir = _cli_keys(work)
        bundles = {v: _cli_signed(bundle_dir, key, files, v) for v in (1, 2, 3)}
    else:
        key, trust, trust_dir = make_keys(work)
        bundles = {v: signed(bundle_dir, key, files, v) for v in (1, 2, 3)}
    other_key, _, _ = make_keys(work, "other")
    template = installed_store(work / "template", bundles[1], trust)
    with tarfile.open(bundles[2]) as tar:
        extracted = sum(m.size for m in tar.getmembers())
    return {
        "bundle": bundle_dir, "work": work, "key": key, "other_key": other_key,
        "trust": trust, "trust_dir": trust_dir, "files": files, "template": template.root,
        **{f"v{v}": path for v, path in bundles.items()},
        "bytes": bundles[2].stat().st_size + extracted,
    }  # fmt: skip


def _cli_keys(work: Path) -> tuple[Path, TrustStore, Path]:
    """`lineside-export keygen`; returns (private key, trust store, trust dir) like make_keys."""
    from export.cli import main as lineside_export

    assert lineside_export(["keygen", "--out", str(work / "keys")]) == 0
    (key,) = (work / "keys").glob("*.key")
    trust_dir = work / "keys-trust"
    trust_dir.mkdir()
    shutil.copy(key.with_suffix(".pub"), trust_dir)
    return key, TrustStore.load(trust_dir), trust_dir


def _cli_signed(bundle_dir: Path, key: Path, work: Path, version: int) -> Path:
    """`lineside-export sign` of `bundle_dir` as model `version`."""
    from export.cli import main as lineside_export

    src = variant(bundle_dir, work / f"dir{version}", version)
    out = work / f"model-{version}.bundle"
    assert lineside_export(["sign", str(src), "--key", str(key), "--out", str(out)]) == 0
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


def head_only(out: Path, manifest: bytes, signature: bytes) -> Path:
    """A bundle file of just the two head members, whatever bytes they hold."""
    items = []
    for name, data in (("manifest.json", manifest), ("manifest.sig", signature)):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        items.append((info, data))
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data))
    return out


def signed_manifest(kit: dict[str, Any], out: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A head-only bundle file whose manifest (v2's, edited) carries a valid signature."""
    from agent.bundles.signing import load_private_key, sign_manifest

    manifest = json.loads(members(kit["v2"])[0][1])
    edit(manifest)
    raw = (json.dumps(manifest, indent=2) + "\n").encode()
    return head_only(out, raw, sign_manifest(raw, load_private_key(kit["key"])))


def gnu_long_name_tar(out: Path, name_bytes: int) -> Path:
    """A tar file whose first header is a GNU long name of `name_bytes` bytes ('A' * n)."""

    def header(name: bytes, size: int, flag: bytes) -> bytes:
        block = bytearray(512)
        block[0 : len(name)] = name
        block[100:108] = b"0000644\x00"
        block[124:136] = f"{size:011o}\x00".encode()
        block[136:148] = b"00000000000\x00"
        block[156:157] = flag
        block[257:265] = b"ustar  \x00"
        block[148:156] = b" " * 8
        block[148:156] = f"{sum(block):06o}\x00 ".encode()
        return bytes(block)

    with out.open("wb") as f:
        f.write(header(b"././@LongLink", name_bytes, b"L"))
        chunk = b"A" * (1 << 20)
        left = name_bytes
        while left:
            f.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
        f.write(b"\x00" * (-name_bytes % 512))
        f.write(header(b"manifest.json", 2, b"0") + b"{}".ljust(512, b"\x00") + bytes(1024))
    return out
