"""A USB stick with a `lineside/` folder: install the newest valid bundle, leave a result file.

The udev rule and `lineside-usb@.service` (packaging/) mount the stick and run
`lineside bundle usb MOUNTPOINT`. Bundle files are `lineside/*.bundle`; they are ranked by the
model version their manifest claims (read from the stick, unverified, only to choose the
order) and tried newest first; the first one that passes every check is installed. Each try
is copied to internal staging before it is verified, so pulling the stick is harmless.
`lineside/lineside-result.txt` tells the technician what happened to each file.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.bundles import archive
from agent.bundles.install import InstallResult, install_file
from agent.bundles.refusals import Refusal, UpdateRefused
from agent.bundles.signing import TrustStore
from agent.bundles.store import ModelStore
from agent.config import SiteConfig

FOLDER = "lineside"
PATTERN = "*.bundle"
RESULT_NAME = "lineside-result.txt"


@dataclass
class StickOutcome:
    """What a stick brought: the install (if any) and one line per file tried."""

    installed: InstallResult | None = None
    lines: list[str] = field(default_factory=list)
    refusals: list[UpdateRefused] = field(default_factory=list)


def claimed_version(path: Path) -> int:
    """The model version a bundle file says it has (unverified; -1 if unreadable)."""
    try:
        manifest, _sig = archive.read_head(path, archive.Limits())
        version = json.loads(manifest).get("model_version")
    except (UpdateRefused, ValueError, AttributeError):
        return -1
    return version if isinstance(version, int) else -1


def find_bundles(mount: Path) -> list[Path]:
    """Bundle files in `<mount>/lineside/`, newest claimed version first."""
    folder = mount / FOLDER
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob(PATTERN) if p.is_file() and not p.is_symlink()]
    return sorted(files, key=lambda p: (claimed_version(p), p.name), reverse=True)


def install_from_stick(
    mount: Path, store: ModelStore, trust: TrustStore, site: SiteConfig | None = None
) -> StickOutcome:
    """Try the stick's bundles newest first; install the first valid one; write the result."""
    outcome = StickOutcome()
    bundles = find_bundles(mount)
    if not bundles:
        refusal = UpdateRefused(Refusal.UNREADABLE, f"no {PATTERN} files in {FOLDER}/ on the stick")
        outcome.refusals.append(refusal)
        outcome.lines.append(str(refusal))
    for path in bundles:
        try:
            outcome.installed = install_file(path, store, trust, site=site)
        except UpdateRefused as exc:
            outcome.refusals.append(exc)
            outcome.lines.append(f"{path.name}: {exc}")
            continue
        outcome.lines.append(f"{path.name}: {outcome.installed.describe()}")
        break
    write_result(mount, outcome)
    return outcome


def write_result(mount: Path, outcome: StickOutcome) -> Path | None:
    """Write lineside/lineside-result.txt on the stick (best effort: it may be read-only)."""
    folder = mount / FOLDER
    verdict = "INSTALLED" if outcome.installed is not None else "NOTHING INSTALLED"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = "\n".join(
        [f"Lineside model update on {socket.gethostname()} at {stamp}: {verdict}", *outcome.lines]
    )
    target = folder / RESULT_NAME
    tmp = folder / f".{RESULT_NAME}.tmp"
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError:
        return None
    return target
