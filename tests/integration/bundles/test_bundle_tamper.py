"""Every way a bundle file can be bad is refused with its own reason; the installed model stays.

Each bundle starts from the real export (the session's `bundle_dir`), is signed with a real
ed25519 key, then tampered with. Every refusal must leave model 1 current, verified, alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.bundles import archive, signing
from agent.bundles.archive import Limits
from agent.bundles.install import install_file
from agent.bundles.refusals import Refusal, UpdateRefused
from agent.bundles.store import ModelStore, load_verified
from agent.config import load_config
from agent.paths import firmware_configs
from tests.bundle_kit import (
    flip_member_byte,
    members,
    rewrite,
    signed,
    variant,
)


@pytest.fixture
def store(kit: dict[str, Any], tmp_path: Path) -> ModelStore:
    shutil.copytree(kit["template"], tmp_path / "state", symlinks=True)
    return ModelStore(tmp_path / "state")


def resign(kit: dict[str, Any], src: Path, out: Path, fix_hashes: bool = True) -> Path:
    """Sign a bundle directory as is (after re-hashing its files), without the export checks."""
    manifest = json.loads((src / "manifest.json").read_text())
    if fix_hashes:
        for rel in manifest["files"]:
            data = (src / rel).read_bytes()
            manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    raw = (json.dumps(manifest, indent=2) + "\n").encode()
    sig = signing.sign_manifest(raw, signing.load_private_key(kit["key"]))
    archive.write_archive(out, raw, sig, src, sorted(manifest["files"]))
    return out


def nan_model(path: Path, window: int, channels: int) -> None:
    """An ONNX model with the right signature whose every output is NaN."""
    from onnx import TensorProto, helper, save

    nan = helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "nan"], ["m"]),
            helper.make_node("ReduceMean", ["m", "axes"], ["contrib"], keepdims=0),
            helper.make_node("ReduceMax", ["contrib", "axes"], ["score"], keepdims=0),
        ],
        "nan",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", window, channels])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["b"]),
            helper.make_tensor_value_info("contrib", TensorProto.FLOAT, ["b", channels]),
        ],
        initializer=[nan, axes],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def with_dir(kit: dict[str, Any], out: Path, change: Callable[[Path], None]) -> Path:
    src = variant(kit["bundle"], out.with_suffix(".d"), 2)
    change(src)
    return resign(kit, src, out)


def _flip_signature(kit: dict[str, Any], out: Path) -> Path:
    items = members(kit["v2"])
    doc = json.loads(items[1][1])
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[10] ^= 0x01
    doc["signature"] = base64.b64encode(bytes(raw)).decode()
    data = json.dumps(doc).encode()
    items[1][0].size = len(data)
    return rewrite(kit["v2"], out, [items[0], (items[1][0], data), *items[2:]])


def _extra(kit: dict[str, Any], out: Path, make: Callable[[], tarfile.TarInfo]) -> Path:
    return rewrite(kit["v2"], out, [*members(kit["v2"]), (make(), b"x")])


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, 1 if kind == tarfile.REGTYPE else 0
    return info


def _truncated(kit: dict[str, Any], out: Path) -> Path:
    with tarfile.open(kit["v2"]) as tar:
        cut = tar.getmember("vae.onnx").offset_data + 1000
    out.write_bytes(kit["v2"].read_bytes()[:cut])
    return out


def _golden_off(src: Path) -> None:
    with np.load(src / "golden.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["score_fp32"] = arrays["score_fp32"] * 2 + 1  # int8 off: runs as fp32 (test_golden)
    with (src / "golden.npz").open("wb") as f:
        np.savez(f, **arrays)


def _no_golden(kit: dict[str, Any], out: Path) -> Path:
    src = variant(kit["bundle"], out.with_suffix(".d"), 2, lambda m: m.pop("golden"))
    return resign(kit, src, out)


def _move_to_end(kit: dict[str, Any], out: Path, name: str) -> Path:
    items = members(kit["v2"])
    return rewrite(kit["v2"], out, [i for i in items if i[0].name != name] + [
        i for i in items if i[0].name == name])  # fmt: skip


def _bad_size(kit: dict[str, Any], out: Path) -> Path:
    items = members(kit["v2"])
    fixed = []
    for info, data in items:
        if info.name == "parity.json":
            data = data + b" "
            info.size = len(data)
        fixed.append((info, data))
    return rewrite(kit["v2"], out, fixed)


def _edit(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any], Path], Path]:
    def build(kit: dict[str, Any], out: Path) -> Path:
        src = variant(kit["bundle"], out.with_suffix(".d"), 2, change)
        return resign(kit, src, out, fix_hashes=False)  # the export would refuse to sign it

    return build


def _flip(name: str) -> Callable[[dict[str, Any], Path], Path]:
    return lambda kit, out: flip_member_byte(kit["v2"], out, name)


def _not_tar(kit: dict[str, Any], out: Path) -> Path:
    out.write_bytes(b"\x89PNG" * 300)
    return out


CASES: dict[str, tuple[Callable[[dict[str, Any], Path], Path], Refusal]] = {
    "flip manifest.json": (_flip("manifest.json"), Refusal.BAD_SIGNATURE),
    "flip signature": (_flip_signature, Refusal.BAD_SIGNATURE),
    "flip vae.onnx": (_flip("vae.onnx"), Refusal.HASH_MISMATCH),
    "flip vae.int8.onnx": (_flip("vae.int8.onnx"), Refusal.HASH_MISMATCH),
    "flip parity.json": (_flip("parity.json"), Refusal.HASH_MISMATCH),
    "flip golden.npz": (_flip("golden.npz"), Refusal.HASH_MISMATCH),
    "garbage signature file": (
        lambda k, o: rewrite(k["v2"], o, [members(k["v2"])[0],
                                            (_member("manifest.sig"), b"x"),
                                            *members(k["v2"])[2:]]),
        Refusal.SIGNATURE_MALFORMED),
    "unknown key": (
        lambda k, o: signed(k["bundle"], k["other_key"], o.parent, 2), Refusal.UNKNOWN_KEY),
    "downgrade": (lambda k, o: signed(k["bundle"], k["key"], o.parent, 1), Refusal.DOWNGRADE),
    "unknown format": (_edit(lambda m: m.update(format=99)), Refusal.UNKNOWN_FORMAT),
    "malformed manifest": (_edit(lambda m: m.update(window="long")), Refusal.BAD_MANIFEST),
    "agent too old": (_edit(lambda m: m.update(min_agent_version="99.0.0")), Refusal.AGENT_TOO_OLD),
    "channels reordered": (
        _edit(lambda m: m.update(channels=m["channels"][::-1])), Refusal.INCOMPATIBLE),
    "other window": (_edit(lambda m: m.update(window=16)), Refusal.INCOMPATIBLE),
    "nan model": (
        lambda k, o: with_dir(k, o, lambda d: nan_model(d / "vae.int8.onnx", 32, 9)),
        Refusal.NON_FINITE),
    "not onnx": (
        lambda k, o: with_dir(k, o, lambda d: (d / "vae.onnx").write_bytes(b"not a model")),
        Refusal.MODEL_LOAD),
    "golden outputs differ": (lambda k, o: with_dir(k, o, _golden_off), Refusal.GOLDEN_MISMATCH),
    "no golden": (_no_golden, Refusal.NO_GOLDEN),
    "../ path": (lambda k, o: _extra(k, o, lambda: _member("../evil")), Refusal.UNSAFE_PATH),
    "nested ../ path": (
        lambda k, o: _extra(k, o, lambda: _member("sub/../../evil")), Refusal.UNSAFE_PATH),
    "absolute path": (
        lambda k, o: _extra(k, o, lambda: _member("/tmp/lineside-evil")), Refusal.UNSAFE_PATH),
    "symlink": (
        lambda k, o: _extra(k, o, lambda: _member("link", tarfile.SYMTYPE, "/etc/passwd")),
        Refusal.LINK_MEMBER),
    "hardlink": (
        lambda k, o: _extra(k, o, lambda: _member("hard", tarfile.LNKTYPE, "vae.onnx")),
        Refusal.LINK_MEMBER),
    "device": (lambda k, o: _extra(k, o, lambda: _member("dev", tarfile.CHRTYPE)),
               Refusal.SPECIAL_MEMBER),
    "fifo": (lambda k, o: _extra(k, o, lambda: _member("fifo", tarfile.FIFOTYPE)),
             Refusal.SPECIAL_MEMBER),
    "unlisted file": (
        lambda k, o: _extra(k, o, lambda: _member("extra.bin")), Refusal.UNLISTED_FILE),
    "duplicate file": (
        lambda k, o: rewrite(k["v2"], o, [*members(k["v2"]), members(k["v2"])[2]]),
        Refusal.DUPLICATE_MEMBER),
    "missing file": (
        lambda k, o: rewrite(k["v2"], o, [i for i in members(k["v2"])
                                            if i[0].name != "parity.json"]),
        Refusal.MISSING_FILE),
    "size differs": (_bad_size, Refusal.SIZE_MISMATCH),
    "truncated": (_truncated, Refusal.TRUNCATED),
    "not a tar file": (_not_tar, Refusal.NOT_AN_ARCHIVE),
    "signature not second": (lambda k, o: _move_to_end(k, o, "manifest.sig"), Refusal.LAYOUT),
}  # fmt: skip


def assert_untouched(store: ModelStore, trust: signing.TrustStore) -> None:
    assert store.current_version() == 1
    assert load_verified(store.current_link, trust).manifest.model_version == 1
    assert sorted(p.name for p in store.versions.iterdir()) == ["1"]
    assert list(store.staging.iterdir()) == []
    assert store.highest() == 1


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_bundle_is_refused_with_its_reason(
    case: str, kit: dict[str, Any], store: ModelStore, tmp_path: Path
) -> None:
    build, reason = CASES[case]
    out = tmp_path / "files"
    out.mkdir()
    bundle = build(kit, out / "tampered.bundle")
    with pytest.raises(UpdateRefused) as refused:
        install_file(bundle, store, kit["trust"])
    assert refused.value.reason is reason, str(refused.value)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"refused ({reason.value}): ")
    assert_untouched(store, kit["trust"])
    assert not (tmp_path / "evil").exists() and not Path("/tmp/lineside-evil").exists()
    log = [json.loads(line) for line in store.audit_file.read_text().splitlines()]
    assert log[-1]["action"] == "refused" and log[-1]["reason"] == reason.value


def test_incompatible_with_the_site_config(kit: dict[str, Any], store: ModelStore) -> None:
    site = load_config(firmware_configs() / "sites" / "demo-extruder.toml")

    def rename(m: dict[str, Any]) -> None:
        m["channels"][0]["name"] = "ghost_tag"

    bundle = signed(kit["bundle"], kit["key"], kit["files"], 5, rename)
    with pytest.raises(UpdateRefused) as refused:
        install_file(bundle, ModelStore(store.root / "empty"), kit["trust"], site=site)
    assert refused.value.reason is Refusal.INCOMPATIBLE
    assert "ghost_tag" in refused.value.detail
    install_file(kit["v2"], store, kit["trust"], site=site)  # the real one fits the site
    assert store.current_version() == 2


def test_size_limits_and_free_space(kit: dict[str, Any], store: ModelStore) -> None:
    for limits, reason in (
        (Limits(max_file_bytes=100_000), Refusal.OVERSIZED),
        (Limits(max_total_bytes=200_000), Refusal.OVERSIZED),
        (Limits(reserve_bytes=1 << 60), Refusal.NO_SPACE),
    ):
        with pytest.raises(UpdateRefused) as refused:
            install_file(kit["v2"], store, kit["trust"], limits=limits)
        assert refused.value.reason is reason
        assert_untouched(store, kit["trust"])


def test_downgrade_override_is_explicit_and_logged(kit: dict[str, Any], store: ModelStore) -> None:
    install_file(signed(kit["bundle"], kit["key"], kit["files"], 7), store, kit["trust"])
    old = signed(kit["bundle"], kit["key"], kit["files"], 4)
    with pytest.raises(UpdateRefused):
        install_file(old, store, kit["trust"])
    result = install_file(old, store, kit["trust"], allow_downgrade=True)
    assert result.override and store.current_version() == 4
    assert store.highest() == 7  # the override never lowers the recorded highest
    log = [json.loads(line) for line in store.audit_file.read_text().splitlines()]
    assert log[-1]["action"] == "installed" and log[-1]["override"] is True


def test_every_reason_is_distinct() -> None:
    values = [r.value for r in Refusal]
    assert len(values) == len(set(values))
