"""A USB stick for the booted Debian: an ext4 image with lineside/<name>.bundle, on a loop device.

There is no udev in the container (its /sys is read-only), so `prime_udev` writes the record
udev would have made for a USB filesystem (ID_BUS, ID_FS_TYPE, ID_FS_USAGE) into
/run/udev/data/b<major>:<minor>, the database `udevadm info` reads; everything after that (the
mount unit and its script, systemd-mount, the update unit as the lineside user, the install and
the running agent's hot swap) is the packaged code, unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.system.booted import BootedDebian


def make_stick(image: Path, bundles: list[Path]) -> str:
    """Write an ext4 image holding lineside/<bundle names>, attach it; returns /dev/loopN."""
    content = image.with_suffix(".d")
    (content / "lineside").mkdir(parents=True)
    for bundle in bundles:
        shutil.copy(bundle, content / "lineside" / bundle.name)
    with image.open("wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "STICK", "-d", str(content), str(image)],
                   check=True)  # fmt: skip
    return subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


def detach(device: str) -> None:
    """Detach the loop device (ignoring one already gone)."""
    subprocess.run(["losetup", "-d", device], capture_output=True)


def prime_udev(box: BootedDebian, device: str) -> str:
    """udev's record of `device` as a USB ext4 filesystem, inside; returns its kernel name."""
    st = os.stat(device)
    # I: initialised (usec), G:/Q: the "systemd" tag that makes PID 1 track it as a .device.
    record = ("I:1\nE:ID_BUS=usb\nE:ID_FS_TYPE=ext4\nE:ID_FS_USAGE=filesystem\n"
              "E:ID_FS_LABEL=STICK\nG:systemd\nQ:systemd\nV:1\n")  # fmt: skip
    key = f"b{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    script = (f"mkdir -p /run/udev/data /run/udev/tags/systemd && cat >/run/udev/data/{key} "
              f"&& : >/run/udev/tags/systemd/{key}")  # fmt: skip
    box.run(["sh", "-c", script], input=record)
    box.run(["systemctl", "daemon-reload"])  # PID 1 enumerates the tagged devices again
    return Path(device).name
