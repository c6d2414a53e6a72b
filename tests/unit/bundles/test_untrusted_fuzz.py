"""Fuzz the readers of untrusted bundle bytes: the tar reader, the manifest and signature parsers.

Whatever the bytes, each may only return or raise `UpdateRefused`, and every refusal's text is
bounded and free of control characters.
"""

from __future__ import annotations

import io
import json
import tarfile

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bundles import archive
from agent.bundles.checks import parse_head
from agent.bundles.refusals import MAX_DETAIL_CHARS, UpdateRefused
from agent.bundles.signing import TrustStore, key_id, sign_manifest
from agent.bundles.tarstream import TarReader

FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
KEY = Ed25519PrivateKey.generate()
TRUST = TrustStore({key_id(KEY.public_key()): KEY.public_key()}, "trust")


def assert_clean(refusal: UpdateRefused) -> None:
    text = str(refusal)
    assert len(text) <= MAX_DETAIL_CHARS + 80
    assert text.isprintable(), text


def valid_tar(members: list[tuple[str, bytes, bytes]], fmt: int) -> bytes:
    """A tar of (name, type, content) members, in that order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            info.linkname = "target" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return out.getvalue()


def walk(data: bytes) -> list[str]:
    """Every member name the reader yields, reading all data."""
    reader = TarReader(io.BytesIO(data), "fuzz.bundle")
    names = []
    while (member := reader.next()) is not None:
        names.append(member.name)
        reader.read_data(1 << 20)
        assert len(member.name) <= 8192
    return names


names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=300)
kinds = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]
)
member_lists = st.lists(st.tuples(names, kinds, st.binary(max_size=700)), max_size=4)
formats = st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])


@FUZZ
@given(member_lists, formats)
def test_the_reader_returns_what_tarfile_wrote(
    members: list[tuple[str, bytes, bytes]], fmt: int
) -> None:
    data = valid_tar(members, fmt)
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert walk(data) == tar.getnames()
    except UpdateRefused as exc:  # a name tarfile wrote as a pax/GNU header above the cap
        assert_clean(exc)


@FUZZ
@given(
    member_lists,
    formats,
    st.lists(st.tuples(st.integers(0, 1 << 16), st.binary(min_size=1, max_size=16)), max_size=6),
)
def test_a_damaged_tar_is_read_or_refused_never_crashes(
    members: list[tuple[str, bytes, bytes]], fmt: int, edits: list[tuple[int, bytes]]
) -> None:
    data = bytearray(valid_tar(members, fmt))
    for at, chunk in edits:
        at %= max(len(data), 1)
        data[at : at + len(chunk)] = chunk
    try:
        walk(bytes(data))
    except UpdateRefused as exc:
        assert_clean(exc)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_are_refused_or_read(data: bytes) -> None:
    try:
        walk(data)
        archive.read_head_from(io.BytesIO(data), "fuzz.bundle", archive.Limits())
    except UpdateRefused as exc:
        assert_clean(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=40,
)
manifest_keys = st.sampled_from(
    ["format", "model_version", "channels", "window", "hop", "scaler", "spc", "detector",
     "models", "files", "golden", "min_agent_version", "label"]
)  # fmt: skip


def a_real_manifest() -> dict[str, object]:
    """The shape the export writes, small: every field the parser checks is there."""
    return {
        "format": 1, "kind": "lineside-bundle", "model_version": 3, "label": "x",
        "min_agent_version": "0.1.0", "channels": [{"name": "t1", "unit": "C"}],
        "window": 8, "hop": 1, "scaler": {"kind": "robust", "center": [0.0], "scale": [1.0]},
        "spc": {"center": [0.0], "sigma": [1.0], "mr_bar": [1.0], "nsigmas": 3.0},
        "detector": {"kind": "vae", "threshold": 1.0, "shift": None},
        "models": {"fp32": "vae.onnx"},
        "files": {"vae.onnx": {"sha256": "0" * 64, "size": 10},
                  "g.npz": {"sha256": "1" * 64, "size": 3}},
        "golden": {"file": "g.npz", "rtol": 0.01, "atol": 0.001},
    }  # fmt: skip


def test_the_real_shape_parses() -> None:
    _raw, manifest = parse_head(json.dumps(a_real_manifest()).encode())
    assert manifest.model_version == 3


@FUZZ
@given(
    st.dictionaries(manifest_keys, json_values, max_size=6),
    st.lists(
        st.sampled_from(["files", "models", "golden", "channels", "spc", "detector", "scaler"]),
        max_size=3,
    ),
)
def test_a_mangled_manifest_is_parsed_or_refused(
    overrides: dict[str, object], keys: list[str]
) -> None:
    manifest = {**a_real_manifest(), **overrides}
    for key in keys:
        manifest.pop(key, None)
    raw = json.dumps(manifest).encode()
    for text in (raw, raw[: len(raw) // 2]):
        try:
            parse_head(text)
        except UpdateRefused as exc:
            assert_clean(exc)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=4200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.integers(1, 6000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 6000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    )
)
def test_any_signature_file_is_verified_or_refused(signature: bytes) -> None:
    manifest = json.dumps(a_real_manifest()).encode()
    for sig in (signature, sign_manifest(manifest, KEY)[:-1] + signature[:50]):
        try:
            TRUST.verify(manifest, sig)
        except UpdateRefused as exc:
            assert_clean(exc)
    for doc in (signature,):
        try:
            parse_head(doc)
        except UpdateRefused as exc:
            assert_clean(exc)
