"""A USB stick with a `lineside/` folder: install the newest valid bundle, leave a result file.

`lineside-usb-mount@.service` (packaging/) mounts the stick read-only and
`lineside-usb@.service` runs `lineside bundle usb MOUNTPOINT` as the agent's user. Bundle files
are `lineside/*.bundle`, every one opened through bundles/stick.py (no link is ever followed);
they are ranked by the model version their manifest claims (read with the bounded tar and JSON
readers, unverified, only to choose the order) and tried newest first; the first one that
passes every check is installed. Each try is copied to internal staging before it is verified,
so pulling the stick is harmless. Every failure is caught per file, so one bad file never stops
the others, and the result is always written: `lineside/lineside-result.txt` on the stick when
it is writable, and `--result-file` (the unit's runtime directory, which the mount unit copies
onto the stick) when given.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.bundles import archive
from agent.bundles.install import InstallResult, install_file
from agent.bundles.jsonbounds import parse_json
from agent.bundles.refusals import Refusal, UpdateRefused, shown
from agent.bundles.signing import TrustStore
from agent.bundles.stick import FOLDER, RESULT_NAME, SUFFIX, StickFolder, describe_os_error
from agent.bundles.store import ModelStore, write_atomic
from agent.config import SiteConfig

__all__ = ["FOLDER", "RESULT_NAME", "StickOutcome", "install_from_stick"]
log = logging.getLogger(__name__)


@dataclass
class StickOutcome:
    """What a stick brought: the install (if any) and one line per file tried."""

    installed: InstallResult | None = None
    lines: list[str] = field(default_factory=list)
    refusals: list[UpdateRefused] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # where the result file went
    unwritten: list[str] = field(default_factory=list)  # where it could not, and why

    def refuse(self, name: str | None, refusal: UpdateRefused) -> None:
        """Record one refusal (of a file, or of the whole stick when `name` is None)."""
        self.refusals.append(refusal)
        self.lines.append(str(refusal) if name is None else f"{shown(name)}: {refusal}")


def claimed_version(folder: StickFolder, name: str) -> int:
    """The model version a bundle file says it has (unverified; -1 if its head is unreadable).
    A name that is not a regular file (a link, fifo, device, folder) is refused here."""
    with folder.open_bundle(name) as f:
        try:
            manifest = archive.read_manifest_from(f, name, archive.Limits())
            raw = parse_json(manifest, "manifest.json", Refusal.BAD_MANIFEST, len(manifest))
        except UpdateRefused:
            return -1  # ranking is advisory: the install says what is wrong with it
    version = raw.get("model_version") if isinstance(raw, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else -1


def _ranked(folder: StickFolder, names: list[str], outcome: StickOutcome) -> list[str]:
    """The names worth trying, newest claimed version first; the others refused at once."""
    versions: dict[str, int] = {}
    for name in names:
        try:
            versions[name] = claimed_version(folder, name)
        except UpdateRefused as exc:
            outcome.refuse(name, exc)
        except Exception as exc:  # one bad file never stops the others
            outcome.refuse(name, _unexpected(exc))
    return sorted(versions, key=lambda n: (versions[n], n), reverse=True)


def _unexpected(exc: Exception) -> UpdateRefused:
    log.error("bundle file failed unexpectedly: %s", shown(f"{type(exc).__name__}: {exc}"))
    log.debug("traceback", exc_info=exc)
    return UpdateRefused(Refusal.UNEXPECTED, f"{type(exc).__name__}: {exc}")


def _try_bundles(
    folder: StickFolder,
    store: ModelStore,
    trust: TrustStore,
    site: SiteConfig | None,
    outcome: StickOutcome,
) -> None:
    names = folder.bundle_names()
    if not names:
        outcome.refuse(None, UpdateRefused(Refusal.UNREADABLE, f"no *{SUFFIX} files in {FOLDER}/"))
    for name in _ranked(folder, names, outcome):
        try:
            with folder.open_bundle(name) as f:
                outcome.installed = install_file(Path(name), store, trust, site=site, opened=f)
        except UpdateRefused as exc:
            outcome.refuse(name, exc)
            continue
        except Exception as exc:  # one bad file never stops the others
            outcome.refuse(name, _unexpected(exc))
            continue
        outcome.lines.append(f"{shown(name)}: {outcome.installed.describe()}")
        break
    if folder.skipped:
        outcome.lines.append(f"{folder.skipped} more entries of {FOLDER}/ were not looked at")


def install_from_stick(
    mount: Path,
    store: ModelStore,
    trust: TrustStore,
    site: SiteConfig | None = None,
    result_file: Path | None = None,
) -> StickOutcome:
    """Try the stick's bundles newest first; install the first valid one; write the result."""
    outcome = StickOutcome()
    folder: StickFolder | None = None
    try:
        folder = StickFolder.open(mount)
        _try_bundles(folder, store, trust, site, outcome)
    except UpdateRefused as exc:
        outcome.refuse(None, exc)
    except Exception as exc:  # the result is written whatever happened
        outcome.refuse(None, _unexpected(exc))
    finally:
        write_result(folder, outcome, result_file)
        if folder is not None:
            folder.close()
    return outcome


def result_text(outcome: StickOutcome) -> str:
    """The result file's text: a verdict line, then one line per file tried."""
    verdict = "INSTALLED" if outcome.installed is not None else "NOTHING INSTALLED"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    head = f"Lineside model update on {socket.gethostname()} at {stamp}: {verdict}"
    return "\n".join([head, *outcome.lines]) + "\n"


def write_result(
    folder: StickFolder | None, outcome: StickOutcome, result_file: Path | None
) -> None:
    """Write the result onto the stick (when its folder could be opened) and to `result_file`."""
    text = result_text(outcome)
    if folder is not None:
        try:
            folder.write_result(text)
            outcome.written.append(f"{FOLDER}/{RESULT_NAME}")
        except OSError as exc:
            outcome.unwritten.append(f"{FOLDER}/{RESULT_NAME}: {describe_os_error(exc)}")
    if result_file is not None:
        try:
            write_atomic(result_file, text.encode("utf-8", "backslashreplace"), 0o644)
            outcome.written.append(str(result_file))
        except OSError as exc:
            outcome.unwritten.append(f"{result_file}: {exc.strerror or exc}")
    for where in outcome.unwritten:
        log.warning("result file not written to %s", where)
