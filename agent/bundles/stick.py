"""The `lineside/` folder of a USB stick, opened once and never by a path that follows a link.

Anyone can write the stick, so every name on it is opened relative to the folder's directory
fd with O_NOFOLLOW: a `lineside/` that is a symlink is refused before anything is read, a
bundle name that is a symlink, FIFO, device or directory is refused without blocking
(install.open_regular), and the result file goes to a fresh temp name opened with
O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK, then renameat() onto `lineside-result.txt`, which
replaces whatever sits at that name without following or opening it. The listing is bounded
(`MAX_ENTRIES` names looked at, `MAX_BUNDLES` bundle files tried).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO

from agent.bundles.archive import write_all
from agent.bundles.install import open_regular
from agent.bundles.refusals import Refusal, UpdateRefused, shown

FOLDER = "lineside"
SUFFIX = ".bundle"
RESULT_NAME = "lineside-result.txt"
#: The temp name tried first (a stale one is never opened: O_EXCL, then a random name).
RESULT_TEMP = f".{RESULT_NAME}.tmp"
#: Names of the folder looked at, at most (a stick with a million files is read in bounded time).
MAX_ENTRIES = 10_000
#: Bundle files tried, at most.
MAX_BUNDLES = 32
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
_NEW_FILE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
    | os.O_CLOEXEC
)  # fmt: skip


class StickFolder:
    """An open `lineside/` folder of a mounted stick; close it when done (or use `with`)."""

    def __init__(self, fd: int, mount: Path) -> None:
        self.fd = fd
        self.mount = mount
        self.skipped = 0  # bundle files beyond MAX_BUNDLES, or names beyond MAX_ENTRIES

    @classmethod
    def open(cls, mount: Path) -> StickFolder:
        """Open `<mount>/lineside/`; refuse a missing folder, a symlink or anything not a dir."""
        try:
            root = os.open(mount, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise UpdateRefused(
                Refusal.UNREADABLE, f"the stick at {mount} cannot be read: {exc.strerror}"
            ) from None
        try:
            try:
                kind = stat.S_IFMT(os.stat(FOLDER, dir_fd=root, follow_symlinks=False).st_mode)
            except FileNotFoundError:
                raise UpdateRefused(
                    Refusal.UNREADABLE, f"no {FOLDER}/ folder on the stick at {mount}"
                ) from None
            if kind == stat.S_IFLNK:
                raise UpdateRefused(
                    Refusal.UNSAFE_PATH,
                    f"{FOLDER}/ on the stick is a symbolic link: nothing was read from it "
                    f"and no result was written (make {FOLDER}/ a real folder)",
                )
            if kind != stat.S_IFDIR:
                raise UpdateRefused(Refusal.UNREADABLE, f"{FOLDER} on the stick is not a folder")
            try:
                fd = os.open(FOLDER, _DIR_FLAGS, dir_fd=root)
            except OSError as exc:  # swapped for a link after the stat above
                raise UpdateRefused(
                    Refusal.UNSAFE_PATH, f"{FOLDER}/ on the stick cannot be opened: {exc.strerror}"
                ) from None
        finally:
            os.close(root)
        return cls(fd, mount)

    def __enter__(self) -> StickFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the folder's fd."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def bundle_names(self) -> list[str]:
        """Names of `*.bundle` entries (hidden ones aside), at most MAX_BUNDLES, sorted."""
        names: list[str] = []
        with os.scandir(self.fd) as entries:
            for seen, entry in enumerate(entries):
                if seen >= MAX_ENTRIES:
                    self.skipped += 1
                    break
                if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                    names.append(entry.name)
        names.sort()
        if len(names) > MAX_BUNDLES:
            self.skipped += len(names) - MAX_BUNDLES
            names = names[-MAX_BUNDLES:]
        return names

    def open_bundle(self, name: str) -> BinaryIO:
        """Open one bundle file of the folder: a regular file, never through a link."""
        return open_regular(name, dir_fd=self.fd, follow=False)

    def write_result(self, text: str) -> None:
        """Write `lineside-result.txt` atomically, following nothing; OSError if it cannot."""
        data = text.encode("utf-8", "backslashreplace")
        names = [RESULT_TEMP, *(f".{RESULT_NAME}.{secrets.token_hex(8)}.tmp" for _ in range(4))]
        for name in names:
            try:
                fd = os.open(name, _NEW_FILE_FLAGS, 0o644, dir_fd=self.fd)
            except FileExistsError:
                continue  # a leftover, a link or a fifo at that name: never opened
            try:
                try:
                    write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(name, RESULT_NAME, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            except OSError:
                _unlink_quietly(name, self.fd)
                raise
            os.fsync(self.fd)
            return
        raise OSError(errno.EEXIST, "every temp name for the result file is taken")


def _unlink_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def describe_os_error(exc: OSError) -> str:
    """An OSError from the stick in a few words (its file name may be attacker-made)."""
    return f"{exc.strerror or type(exc).__name__}" + (
        f" ({shown(exc.filename)})" if exc.filename is not None else ""
    )
