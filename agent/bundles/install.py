"""Verify and install a signed bundle file, in the order a trusted updater must follow.

1. copy the file into internal staging (the stick may change or vanish from here on)
2. check free space (the copy, the extracted bundle and a reserve must fit)
3. read manifest.json and manifest.sig only; verify the ed25519 signature
4. parse the manifest: known format, agent new enough
5. refuse a downgrade (version <= highest installed) unless explicitly overridden, and logged
6. check compatibility with the site config and the running model (channels, window, hop)
7. extract into staging with path, type and size checks; verify every sha256
8. load every ONNX model in onnxruntime and run the bundle's golden inputs
9. fsync, rename to versions/<v>, flip `current`, record the highest version, prune

`LINESIDE_CRASH_AT` (tests only) makes the installer SIGKILL itself at a named step or after
`bytes:N` bytes written, to prove that every crash leaves the old or the new model, complete.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from agent.bundles import archive
from agent.bundles.archive import Limits
from agent.bundles.checks import check_compat, check_models, check_version, parse_head
from agent.bundles.manifest import MANIFEST_NAME, Manifest
from agent.bundles.refusals import SHOWN_CHARS, Refusal, UpdateRefused, shown
from agent.bundles.signing import TrustStore
from agent.bundles.store import ModelStore, fsync_tree
from agent.config import SiteConfig

log = logging.getLogger(__name__)
CRASH_ENV = "LINESIDE_CRASH_AT"
STEPS = (
    "start", "copied", "head-read", "signature-checked", "version-checked", "compat-checked",
    "extracted", "models-checked", "fsynced", "committed", "marked", "previous-linked", "flipped",
    "recorded", "pruned",
)  # fmt: skip


class CrashPoints:
    """Test hook: SIGKILL this process at a named step, or once `bytes:N` bytes are written."""

    def __init__(self, spec: str = "") -> None:
        self.step = "" if spec.startswith("bytes:") else spec
        self.at_byte = int(spec[6:]) if spec.startswith("bytes:") else -1
        self.written = 0

    @classmethod
    def from_env(cls) -> CrashPoints:
        """Read the spec from LINESIDE_CRASH_AT (empty: never crash)."""
        return cls(os.environ.get(CRASH_ENV, ""))

    def __call__(self, step: str) -> None:
        """Die here if this is the step asked for."""
        if step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def write(self, fd: int, chunk: bytes) -> None:
        """Write a chunk; die after exactly `at_byte` bytes written in all."""
        if 0 <= self.at_byte < self.written + len(chunk):
            archive.write_all(fd, chunk[: self.at_byte - self.written])
            os.kill(os.getpid(), signal.SIGKILL)
        archive.write_all(fd, chunk)
        self.written += len(chunk)


@dataclass(frozen=True)
class Verified:
    """A bundle that passed every check, extracted in staging."""

    manifest: Manifest
    raw: dict[str, Any]
    key_id: str
    path: Path
    override: bool
    seconds: dict[str, float] = field(default_factory=dict)
    #: What the golden run on this CPU found that is not a refusal (int8 runs as fp32 here).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstallResult:
    """What an install did."""

    version: int
    label: str
    previous: int | None
    key_id: str
    path: Path
    override: bool
    pruned: list[int]
    seconds: dict[str, float]
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for humans and the USB result file."""
        was = f" (was {self.previous})" if self.previous is not None else ""
        forced = ", downgrade override" if self.override else ""
        warned = "".join(f"; warning: {w}" for w in self.warnings)
        return (
            f"installed model {self.version} {shown(self.label)}{was}, key {self.key_id}"
            f"{forced}{warned}"
        )


def _free(path: Path) -> int:
    return shutil.disk_usage(path).free


def _check_space(where: Path, need: int, limits: Limits, what: str) -> None:
    free = _free(where)
    if free < need + limits.reserve_bytes:
        raise UpdateRefused(
            Refusal.NO_SPACE,
            f"{what} needs {need} bytes plus a reserve of {limits.reserve_bytes}; only {free} "
            f"free under {where}",
        )


def open_regular(name: str | Path, dir_fd: int | None = None, follow: bool = True) -> BinaryIO:
    """Open a bundle file for reading without blocking on a FIFO or device; refuse anything
    but a regular file (and, with `follow` False, a symlink at the last component)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    flags |= 0 if follow else os.O_NOFOLLOW
    label = shown(Path(name).name)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        why = "is a symlink" if exc.errno == errno.ELOOP else f"cannot be opened: {exc.strerror}"
        raise UpdateRefused(Refusal.UNREADABLE, f"{label} {why}") from None
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise UpdateRefused(
            Refusal.UNREADABLE, f"{label} is not a regular file (a directory, fifo or device)"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _copy_in(src: BinaryIO, label: str, target: Path, crash: CrashPoints) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for chunk in iter(lambda: src.read(archive.CHUNK), b""):
                crash.write(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UpdateRefused(
            Refusal.UNREADABLE, f"cannot copy {label}: {exc.strerror or exc}"
        ) from None


def verify_into(
    source: Path,
    staging: Path,
    trust: TrustStore,
    *,
    floor: int | None = None,
    running: Manifest | None = None,
    site: SiteConfig | None = None,
    allow_downgrade: bool = False,
    limits: Limits | None = None,
    crash: CrashPoints | None = None,
    opened: BinaryIO | None = None,
) -> Verified:
    """Steps 1-8 into an empty staging directory; return the verified, extracted bundle.
    `opened` is the source already open (from a stick's folder); else `source` is opened."""
    limits = limits or Limits()
    crash = crash or CrashPoints()
    clock: dict[str, float] = {}
    t0 = time.perf_counter()
    src = opened if opened is not None else open_regular(source)
    try:
        size = os.fstat(src.fileno()).st_size
        label = shown(source.name)
        _check_space(staging, 2 * size, limits, f"copying {label}")
        copy = staging / "bundle.tar"
        _copy_in(src, label, copy, crash)
    finally:
        if opened is None:
            src.close()
    crash("copied")
    clock["copy"] = time.perf_counter() - t0
    head = archive.read_head(copy, limits, source.name)
    crash("head-read")
    key = trust.verify(*head)
    crash("signature-checked")
    raw, manifest = parse_head(head[0])
    override = False
    if floor is not None:
        override = check_version(manifest, floor, allow_downgrade)
    crash("version-checked")
    check_compat(manifest, site, running)
    crash("compat-checked")
    clock["head"] = time.perf_counter() - t0 - clock["copy"]
    total = sum(int(e.get("size", 0)) for e in manifest.files.values())
    if total > limits.max_total_bytes:
        raise UpdateRefused(Refusal.OVERSIZED, f"the manifest lists {total} bytes of files")
    _check_space(staging, total, limits, f"extracting model {manifest.model_version}")
    bundle = staging / "bundle"
    bundle.mkdir()
    t1 = time.perf_counter()
    archive.extract(copy, bundle, head, manifest.files, limits, crash.write, source.name)
    crash("extracted")
    clock["extract"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    warnings = check_models(bundle, manifest)
    crash("models-checked")
    clock["models"] = time.perf_counter() - t2
    copy.unlink()
    return Verified(manifest, raw, key, bundle, override, clock, tuple(warnings))


def _running(store: ModelStore) -> Manifest | None:
    if store.current_version() is None:
        return None
    try:
        return parse_head((store.current_link / MANIFEST_NAME).read_bytes())[1]
    except (OSError, UpdateRefused):
        return None  # an unreadable current model must not block the update that replaces it


def verify_file(
    source: Path,
    trust: TrustStore,
    *,
    store: ModelStore | None = None,
    site: SiteConfig | None = None,
    limits: Limits | None = None,
) -> Verified:
    """Every check of an install, in a throw-away staging directory; installs nothing."""
    if store is None:
        with tempfile.TemporaryDirectory(prefix="lineside-verify-") as tmp:
            return verify_into(source, Path(tmp), trust, site=site, limits=limits)
    with store.locked(), tempfile.TemporaryDirectory(prefix="verify-", dir=store.staging) as tmp:
        return verify_into(
            source,
            Path(tmp),
            trust,
            floor=store.floor(),
            running=_running(store),
            site=site,
            limits=limits,
        )


def install_file(
    source: Path,
    store: ModelStore,
    trust: TrustStore,
    *,
    site: SiteConfig | None = None,
    allow_downgrade: bool = False,
    limits: Limits | None = None,
    crash: CrashPoints | None = None,
    on_done: Callable[[InstallResult], None] | None = None,
    opened: BinaryIO | None = None,
) -> InstallResult:
    """Verify, then install atomically; the running model is untouched by any refusal.
    `opened`: the source already open for reading (a stick's file, see bundles/stick.py)."""
    crash = crash or CrashPoints.from_env()
    with store.locked():
        store.recover()
        crash("start")
        staging = store.new_staging("incoming")
        try:
            v = verify_into(
                source, staging, trust, floor=store.floor(), running=_running(store), site=site,
                allow_downgrade=allow_downgrade, limits=limits, crash=crash, opened=opened,
            )  # fmt: skip
            t0 = time.perf_counter()
            fsync_tree(v.path)
            crash("fsynced")
            version = v.manifest.model_version
            if version == store.current_version():
                raise UpdateRefused(Refusal.DOWNGRADE, f"model {version} is already running")
            path = store.commit(v.path, version)
            crash("committed")
            running = store.current_version()
            if running is not None:  # the agent must see it pass probation, or go back
                pending = store.read_marker()  # the running one is itself still unproven
                store.write_marker(version, pending["previous"] if pending else running)
            crash("marked")
            previous = store.flip(version, crash)
            crash("flipped")
            store.record_highest(version)
            crash("recorded")
            pruned = store.prune()
            crash("pruned")
            v.seconds["commit"] = time.perf_counter() - t0
            store.audit(action="installed", source=source.name[:SHOWN_CHARS], version=version,
                        previous=previous, key_id=v.key_id, override=v.override)  # fmt: skip
        except UpdateRefused as exc:
            store.audit(action="refused", source=source.name[:SHOWN_CHARS], reason=exc.reason.value,
                        detail=exc.detail)  # fmt: skip
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    result = InstallResult(
        version, v.manifest.label, previous, v.key_id, path, v.override, pruned, v.seconds,
        v.warnings,
    )  # fmt: skip
    log.info("%s", result.describe())
    if on_done is not None:
        on_done(result)
    return result
