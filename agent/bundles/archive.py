"""The signed bundle file: a tar whose first two members are the manifest and its signature.

Layout (a plain, uncompressed tar; agent/bundles/tarstream.py reads it with bounded headers):

    manifest.json    the exact bytes the signature covers
    manifest.sig     see agent/bundles/signing.py
    <files>          every file the manifest lists under `files`, nothing else

`read_head` reads only the first two members, so the signature is checked before a single
model byte is looked at. `extract` then streams the rest into a staging directory and refuses,
each with its own reason, absolute paths, `..`, links, devices and fifos, duplicates, files the
manifest does not list, members above the size limits and any sha256 or size mismatch. Files
are created with O_EXCL|O_NOFOLLOW and fsynced; nothing outside the staging directory is ever
opened for writing.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from agent.bundles import tarstream
from agent.bundles.manifest import MANIFEST_NAME
from agent.bundles.refusals import Refusal, UpdateRefused, shown
from agent.bundles.signing import MAX_SIGNATURE_BYTES, SIGNATURE_NAME
from agent.bundles.tarstream import TarMember, TarReader

CHUNK = 1 << 20
Writer = Callable[[int, bytes], None]  # (fd, chunk): write all of chunk to fd


@dataclass(frozen=True)
class Limits:
    """Size limits of a bundle; the defaults leave room for a small LLM beside the VAE."""

    max_file_bytes: int = 2 << 30
    max_total_bytes: int = 4 << 30
    max_manifest_bytes: int = 1 << 20
    max_members: int = 10_000
    reserve_bytes: int = 64 << 20  # free space the store must keep after an install


def safe_member_name(name: str) -> str:
    """The normalised relative path of an archive member; refuse absolute paths and `..`."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise UpdateRefused(Refusal.UNSAFE_PATH, f"archive member {shown(name)} has an unsafe path")
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts) or not parts:
        raise UpdateRefused(
            Refusal.UNSAFE_PATH, f"archive member {shown(name)} climbs out with '..'"
        )
    return "/".join(p for p in parts if p != ".")


def _check_type(member: TarMember) -> None:
    if member.kind in (tarstream.SYMLINK, tarstream.HARDLINK):
        raise UpdateRefused(
            Refusal.LINK_MEMBER,
            f"archive member {shown(member.name)} is a {member.kind} to {shown(member.linkname)}",
        )
    if member.kind not in (tarstream.REGULAR, tarstream.DIRECTORY):
        raise UpdateRefused(
            Refusal.SPECIAL_MEMBER,
            f"archive member {shown(member.name)} is a device, fifo or other special file",
        )


@contextmanager
def open_stream(path: Path, label: str | None = None) -> Iterator[TarReader]:
    """Open a bundle file (in internal staging) for one forward pass of its members;
    `label` names it in messages (the name it had on the stick)."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise UpdateRefused(Refusal.UNREADABLE, f"{path}: {exc.strerror or exc}") from None
    try:
        with f:
            yield TarReader(f, label or path.name)
    except OSError as exc:
        reason = Refusal.NO_SPACE if exc.errno == errno.ENOSPC else Refusal.UNREADABLE
        raise UpdateRefused(reason, f"{shown(path.name)}: {exc.strerror or exc}") from None


def _read_small(tar: TarReader, member: TarMember, limit: int) -> bytes:
    if member.size > limit:
        raise UpdateRefused(
            Refusal.OVERSIZED, f"{shown(member.name)} is {member.size} bytes, limit {limit}"
        )
    data = tar.read_data(limit)
    if len(data) != member.size:
        raise UpdateRefused(Refusal.TRUNCATED, f"{shown(member.name)} ends early in the archive")
    return data


def _next(tar: TarReader, want: str) -> TarMember:
    member = tar.next()
    if member is None or member.name != want or not member.isfile():
        got = "the end of the archive" if member is None else shown(member.name)
        raise UpdateRefused(
            Refusal.LAYOUT,
            f"expected {want} as the next archive member, found {got} "
            f"(a bundle starts with {MANIFEST_NAME} then {SIGNATURE_NAME})",
        )
    return member


def _head(tar: TarReader, limits: Limits) -> tuple[bytes, bytes]:
    manifest = _read_small(tar, _next(tar, MANIFEST_NAME), limits.max_manifest_bytes)
    signature = _read_small(tar, _next(tar, SIGNATURE_NAME), MAX_SIGNATURE_BYTES)
    return manifest, signature


def read_head_from(stream: IO[bytes], label: str, limits: Limits) -> tuple[bytes, bytes]:
    """The exact bytes of manifest.json and manifest.sig from an open bundle file."""
    return _head(TarReader(stream, label), limits)


def read_manifest_from(stream: IO[bytes], label: str, limits: Limits) -> bytes:
    """The bytes of manifest.json alone (unverified: for ranking a stick's files only)."""
    tar = TarReader(stream, label)
    return _read_small(tar, _next(tar, MANIFEST_NAME), limits.max_manifest_bytes)


def read_head(path: Path, limits: Limits, label: str | None = None) -> tuple[bytes, bytes]:
    """The exact bytes of manifest.json and manifest.sig, and nothing else of the file."""
    with open_stream(path, label) as tar:
        return _head(tar, limits)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_member(tar: TarReader, target: Path, write: Writer) -> str:
    digest = hashlib.sha256()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(target, flags, 0o644)
    try:
        while chunk := tar.read_chunk(CHUNK):
            digest.update(chunk)
            write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest()


def extract(
    path: Path,
    dest: Path,
    head: tuple[bytes, bytes],
    files: dict[str, dict[str, Any]],
    limits: Limits,
    write: Writer = write_all,
    label: str | None = None,
) -> None:
    """Stream every member into `dest` (an empty directory), checking each against `files`."""
    seen: set[str] = set()
    total = 0
    with open_stream(path, label) as tar:
        names = (MANIFEST_NAME, SIGNATURE_NAME)
        for index, (name, data) in enumerate(zip(names, head, strict=True)):
            if _read_small(tar, _next(tar, name), len(data)) != data:
                raise UpdateRefused(
                    Refusal.BAD_SIGNATURE, f"{name} changed between two reads (member {index})"
                )
            _write_bytes(dest / name, data, write)
        count = 2
        while True:
            member = tar.next()
            if member is None:
                break
            count += 1
            if count > limits.max_members:
                raise UpdateRefused(Refusal.OVERSIZED, f"more than {limits.max_members} members")
            name = safe_member_name(member.name)
            _check_type(member)
            if member.kind == tarstream.DIRECTORY:
                continue
            if name in seen or name in (MANIFEST_NAME, SIGNATURE_NAME):
                raise UpdateRefused(
                    Refusal.DUPLICATE_MEMBER, f"{shown(name)} is in the archive twice"
                )
            seen.add(name)
            entry = files.get(name)
            if entry is None:
                raise UpdateRefused(
                    Refusal.UNLISTED_FILE,
                    f"{shown(name)} is in the archive but not in the manifest",
                )
            if member.size > limits.max_file_bytes:
                raise UpdateRefused(
                    Refusal.OVERSIZED,
                    f"{shown(name)} is {member.size} bytes, above the per-file limit "
                    f"{limits.max_file_bytes}",
                )
            total += member.size
            if total > limits.max_total_bytes:
                raise UpdateRefused(
                    Refusal.OVERSIZED, f"the files add up to more than {limits.max_total_bytes}"
                )
            if member.size != entry.get("size"):
                raise UpdateRefused(
                    Refusal.SIZE_MISMATCH,
                    f"{shown(name)} is {member.size} bytes, the manifest says {entry.get('size')}",
                )
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if _write_member(tar, target, write) != entry.get("sha256"):
                raise UpdateRefused(
                    Refusal.HASH_MISMATCH,
                    f"{shown(name)} does not match its sha256 in the signed manifest",
                )
    missing = sorted(set(files) - seen)
    if missing:
        raise UpdateRefused(
            Refusal.MISSING_FILE,
            f"the manifest lists {shown(', '.join(missing))} but the archive lacks them",
        )


def _write_bytes(target: Path, data: bytes, write: Writer) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(target, flags, 0o644)
    try:
        write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_archive(
    out: Path, manifest: bytes, signature: bytes, bundle_dir: Path, files: list[str]
) -> None:
    """Write a bundle file: manifest, signature, then each listed file of `bundle_dir`."""

    def info(name: str, size: int) -> tarfile.TarInfo:
        """A member header that says nothing about the build machine (no owner, no time)."""
        member = tarfile.TarInfo(name)
        member.size, member.mode, member.mtime = size, 0o644, 0
        member.uname = member.gname = ""
        return member

    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((MANIFEST_NAME, manifest), (SIGNATURE_NAME, signature)):
            tar.addfile(info(name, len(data)), io.BytesIO(data))
        for name in files:
            path = bundle_dir / name
            with path.open("rb") as f:
                tar.addfile(info(name, path.stat().st_size), f)
