"""Debian bookworm root filesystems for the system tests, built once and cached as tarballs.

`debootstrap --variant=minbase` from the mirror the machine's apt sources name; the result is
packed into ~/.cache/lineside/roots/<name>.tar (written under a temporary name, then renamed, so
an interrupted build never leaves a truncated tarball under the final name) and every test
session unpacks a fresh copy of it. A missing tarball is rebuilt; delete it to rebuild.

    python -m tests.system.debian_root amd64|arm64     build the cache now (prints the time)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

CACHE = Path.home() / ".cache" / "lineside" / "roots"
SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
# Bump when the package lists change, so a stale cache is not reused.
ROOT_FORMAT = 1


@dataclass(frozen=True)
class RootSpec:
    """One cached root: its debootstrap architecture and the packages it includes."""

    arch: str
    include: tuple[str, ...]

    @property
    def name(self) -> str:
        """The tarball's file name stem."""
        return f"{SUITE}-{self.arch}-v{ROOT_FORMAT}"


# amd64: the booted Debian the .deb is installed into (systemd as PID 1, dbus for systemctl,
# python3 the package depends on, udev + e2fsprogs for the USB stick test).
SYSTEMD_ROOT = RootSpec(
    "amd64", ("systemd", "systemd-sysv", "dbus", "python3", "udev", "e2fsprogs")
)
# arm64: userspace only (run under qemu-user-static), with venv/pip for the device wheels.
ARM64_ROOT = RootSpec("arm64", ("python3", "python3-venv", "ca-certificates"))
SPECS = {"amd64": SYSTEMD_ROOT, "arm64": ARM64_ROOT}


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The first Debian mirror the machine's apt sources name (deb822 or one-line form)."""
    files = sorted((sources / "sources.list.d").glob("*.sources"))
    for path in files:
        text = path.read_text(errors="replace")
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1).rstrip("/")
    lists = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and m.group(2) == SUITE:
                return m.group(1).rstrip("/")
    return FALLBACK_MIRROR


def missing_tools(spec: RootSpec) -> str | None:
    """Why this machine cannot build or run the root, or None."""
    if os.geteuid() != 0:
        return "the system tests need root (debootstrap, systemd-nspawn, loop devices)"
    tools = ["debootstrap", "tar"]
    if spec.arch == "amd64":
        tools += ["systemd-nspawn", "nsenter"]
    else:
        tools.append("qemu-aarch64-static")
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make debian-deps installs it)"
    return None


def enable_arm64_emulation() -> None:
    """Register qemu-aarch64 with binfmt_misc (mounting it first), as update-binfmts does."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True)
    if not (binfmt / "qemu-aarch64").exists() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
    if not (binfmt / "qemu-aarch64").exists():
        raise RuntimeError("qemu-aarch64 is not registered with binfmt_misc (qemu-user-static)")


def cached_root(spec: RootSpec, log: bool = True) -> Path:
    """The tarball of `spec`, built now if it is missing."""
    tarball = CACHE / f"{spec.name}.tar"
    if tarball.exists():
        return tarball
    if spec.arch != "amd64":
        enable_arm64_emulation()
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f".{spec.name}.build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    cmd = ["debootstrap", "--variant=minbase", f"--arch={spec.arch}",
           f"--include={','.join(spec.include)}", SUITE, str(work), apt_mirror()]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        # apt's downloaded .debs are not needed in the cache.
        for deb in (work / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        partial = tarball.with_name(f".{tarball.name}.{os.getpid()}")
        subprocess.run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(partial), "."],
                       check=True)  # fmt: skip
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if log:
        took = time.monotonic() - started
        size = tarball.stat().st_size / 2**20
        print(f"cold root build: {spec.name} in {took:.0f} s ({size:.0f} MiB)", file=sys.stderr)
    return tarball


def unpack(tarball: Path, dest: Path) -> Path:
    """A fresh copy of a cached root at `dest` (owners and modes as built)."""
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(dest), "--numeric-owner", "-xpf", str(tarball)], check=True)
    return dest


def _check_tarball(tarball: Path) -> int:
    """Members of a tarball (a cheap read of the whole file: a truncated one raises)."""
    with tarfile.open(tarball) as tar:
        return sum(1 for _ in tar)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "amd64"
    spec = SPECS[which]
    why = missing_tools(spec)
    if why:
        sys.exit(f"cannot build the {which} root: {why}")
    began = time.monotonic()
    path = cached_root(spec)
    print(f"{path}: {_check_tarball(path)} members, ready in {time.monotonic() - began:.0f} s")
