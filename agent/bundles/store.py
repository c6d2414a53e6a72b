"""The model store on the device: versions, an atomic `current` link, and rollback.

    <state>/highest-model-version     the highest version ever installed (outside the store)
    <state>/updates.log               audit log: one JSON line per install, refusal, rollback
    <state>/models/versions/<v>/      one verified bundle directory per installed version
    <state>/models/current            symlink -> versions/<v>: what the agent runs
    <state>/models/previous           symlink -> versions/<v>: what a rollback goes back to
    <state>/models/staging/           incoming copies and half-extracted bundles (same fs)

Every change is a rename of a fully written, fsynced thing, followed by an fsync of the
directory that holds the name, so after a crash at any point `current` names either the old
or the new version, complete. The highest version is written after the flip, and the
downgrade check takes the larger of it and the running version, so a crash between the two
writes can neither lock out nor let in a version it should not.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.bundles.bundle import Bundle, load_bundle
from agent.bundles.refusals import Refusal, UpdateRefused
from agent.bundles.signing import SIGNATURE_NAME, TrustStore

DEFAULT_STATE_DIR = Path("/var/lib/lineside")
DEFAULT_TRUST_DIR = Path("/etc/lineside/trust")


def fsync_dir(path: Path) -> None:
    """Make the names in a directory durable (after a rename or unlink in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory below root, directories last."""
    for dirpath, _dirs, names in os.walk(root, topdown=False):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def temp_path(path: Path) -> Path:
    """Where `write_atomic` writes before the rename: beside `path`, hidden."""
    return path.with_name(f".{path.name}.tmp")


def write_atomic(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Replace a file's content all at once: temp file, fsync, rename, fsync the directory.

    A reader sees the old file or the new one, never half; a failed write leaves no temp file
    behind. `mode` is the new file's permission bits before the umask."""
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def load_verified(path: Path, trust: TrustStore) -> Bundle:
    """A bundle directory whose manifest signature and every file hash check out."""
    manifest = (path / "manifest.json").read_bytes()
    signature = (path / SIGNATURE_NAME).read_bytes()
    trust.verify(manifest, signature)
    return load_bundle(path)


class ModelStore:
    """The versions of the model on one device, and which one runs."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir
        self.models = state_dir / "models"
        self.versions = self.models / "versions"
        self.staging = self.models / "staging"
        self.current_link = self.models / "current"
        self.previous_link = self.models / "previous"
        self.highest_file = state_dir / "highest-model-version"
        self.audit_file = state_dir / "updates.log"

    def ensure(self) -> None:
        """Create the directories (idempotent)."""
        for d in (self.root, self.models, self.versions, self.staging):
            d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the store's lock (one installer or rollback at a time)."""
        self.ensure()
        fd = os.open(self.models / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise UpdateRefused(
                            Refusal.BUSY, "another install or rollback is running"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _link_version(self, link: Path) -> int | None:
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            return None
        name = Path(target).name
        return int(name) if name.isdigit() else None

    def current_version(self) -> int | None:
        """The version `current` points at, or None before the first install."""
        return self._link_version(self.current_link)

    def previous_version(self) -> int | None:
        """The version a rollback would return to, if any."""
        return self._link_version(self.previous_link)

    def version_dir(self, version: int) -> Path:
        """The directory of one installed version."""
        return self.versions / str(version)

    def highest(self) -> int:
        """The highest model version ever installed here (0 when none)."""
        try:
            raw = json.loads(self.highest_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        return int(raw["highest"])

    def floor(self) -> int:
        """A new bundle must have a version above this."""
        return max(self.highest(), self.current_version() or 0)

    def record_highest(self, version: int) -> None:
        """Persist the highest installed version (never lowers it)."""
        if version > self.highest():
            self.ensure()
            write_atomic(self.highest_file, json.dumps({"highest": version}).encode() + b"\n")

    def audit(self, **record: Any) -> None:
        """Append one line to the audit log, durably."""
        self.ensure()
        record = {"ts": time.time(), **record}
        with self.audit_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def new_staging(self, prefix: str) -> Path:
        """A fresh, empty directory under staging/ (same filesystem as versions/)."""
        self.ensure()
        path = self.staging / f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"
        path.mkdir()
        return path

    def _discard(self, path: Path) -> None:
        """Rename into staging first, so a half-deleted tree never sits under versions/."""
        trash = self.staging / f"trash-{path.name}-{time.monotonic_ns()}"
        os.rename(path, trash)
        fsync_dir(path.parent)
        shutil.rmtree(trash, ignore_errors=True)

    def commit(self, staged: Path, version: int) -> Path:
        """Move a verified, fsynced staging directory to versions/<version>."""
        target = self.version_dir(version)
        if target.exists() and version not in (self.current_version(), self.previous_version()):
            self._discard(target)  # left over from an install that crashed before its flip
        os.rename(staged, target)
        fsync_dir(self.versions)
        return target

    def _point(self, link: Path, version: int) -> None:
        tmp = link.with_name(f".{link.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(f"versions/{version}", tmp)
        os.replace(tmp, link)

    def flip(self, version: int, crash: Any = None) -> int | None:
        """Make `version` current; the old current becomes `previous`. Returns the old one."""
        old = self.current_version()
        if old is not None and old != version:
            self._point(self.previous_link, old)
            fsync_dir(self.models)
            if crash is not None:
                crash("previous-linked")
        self._point(self.current_link, version)
        fsync_dir(self.models)
        return old

    def rollback(self, to: int | None = None) -> tuple[int, int]:
        """Point `current` back at `to` (default: `previous`); return (from, to).

        The highest version stays put, so the version rolled away from cannot come back."""
        now = self.current_version()
        back = to if to is not None else self.previous_version()
        if back is None or now is None or not self.version_dir(back).is_dir():
            raise UpdateRefused(Refusal.NO_PREVIOUS, "there is no previous version to go back to")
        self._point(self.current_link, back)
        self.previous_link.unlink(missing_ok=True)
        fsync_dir(self.models)
        return now, back

    def prune(self) -> list[int]:
        """Delete every version but `current`, `previous` and a pending probation's fallback."""
        marker = self.read_marker()
        keep = {self.current_version(), self.previous_version()}
        if marker is not None:
            keep.add(marker["previous"])
        gone = []
        for path in sorted(self.versions.iterdir()) if self.versions.is_dir() else []:
            if path.name.isdigit() and int(path.name) not in keep:
                self._discard(path)
                gone.append(int(path.name))
        return gone

    @property
    def marker_file(self) -> Path:
        """Names a version that has not passed probation yet, and what to go back to."""
        return self.models / "probation.json"

    def write_marker(self, version: int, previous: int) -> None:
        """Record, before the flip, that `version` must still pass probation."""
        doc = {"version": version, "previous": previous, "boots": 0}
        write_atomic(self.marker_file, json.dumps(doc).encode() + b"\n")

    def _marker(self) -> dict[str, int] | None:
        try:
            doc = json.loads(self.marker_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        return {k: int(doc.get(k, 0)) for k in ("version", "previous", "boots")}

    def read_marker(self) -> dict[str, int] | None:
        """The probation marker, or None (also when it names a version that is not current)."""
        marker = self._marker()
        return marker if marker and marker["version"] == self.current_version() else None

    def count_boot(self) -> dict[str, int] | None:
        """Add one agent start to the marker; return it (None when no probation is pending)."""
        marker = self.read_marker()
        if marker is not None:
            marker["boots"] += 1
            write_atomic(self.marker_file, json.dumps(marker).encode() + b"\n")
        return marker

    def clear_marker(self, version: int | None = None) -> None:
        """`version` (default: any) passed probation or was rolled back: nothing pending."""
        marker = self._marker()
        if version is not None and (marker is None or marker["version"] != version):
            return  # the marker is about another version, installed since
        if self.marker_file.exists():
            self.marker_file.unlink()
            fsync_dir(self.models)

    def recover(self) -> None:
        """Clear what a crashed install left behind: staging leftovers and temp links."""
        if self.staging.is_dir():
            for path in self.staging.iterdir():
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        for link in (self.current_link, self.previous_link):
            link.with_name(f".{link.name}.tmp").unlink(missing_ok=True)

    def load_current(self, trust: TrustStore | None = None) -> Bundle:
        """The running bundle, hashes checked (and its signature, given a trust store)."""
        if self.current_version() is None:
            raise UpdateRefused(Refusal.MISSING_FILE, f"{self.current_link}: no model installed")
        path = self.current_link.resolve()  # one version throughout, even if it flips now
        return load_verified(path, trust) if trust is not None else load_bundle(path)
