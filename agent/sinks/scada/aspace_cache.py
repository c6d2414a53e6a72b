"""asyncua's standard address space from a cache on disk: 0.2 s at start instead of 3-4 s.

asyncua builds the OPC-UA standard address space (some 11,000 nodes) from generated code on
every start, or loads it lazily from a Python shelf it wrote on an earlier start
(`Server.init(shelf_file)`). Its check for an existing shelf looks for the file itself or a
`.db` beside it, which only some dbm backends write (`dbm.dumb` writes `.dat`/`.dir`), so
without help it rebuilds the shelf on every start. Here:

- the cache is `<state>/opcua-cache/asyncua-<version>/aspace`, one per asyncua version (a
  shelf pickles asyncua's own classes);
- it is written into a fresh temporary folder, marked complete, then renamed into place, so a
  start killed half-way leaves no half cache;
- before it is used it is opened and its Root node read; a cache that does not open (corrupt,
  truncated, another Python) is removed and rebuilt;
- it is written only where the folder is writable with room to spare (`MIN_FREE_BYTES`);
  otherwise the agent starts without one, as before, and says why in the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shelve
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

log = logging.getLogger(__name__)

SHELF_NAME = "aspace"
MARKER = "complete"  # written last: the folder holds a whole shelf
MIN_FREE_BYTES = 64 * 1024 * 1024  # the shelf takes about 20 MB
ROOT_NODE = "i=84"


def cache_folder(state: Path) -> Path:
    """Where the cache for the running asyncua lives under `state`."""
    return state / "opcua-cache" / f"asyncua-{version('asyncua')}"


def usable_shelf(folder: Path) -> Path | None:
    """The shelf in `folder` if it is complete and opens; a broken one is removed."""
    shelf = folder / SHELF_NAME
    if not (folder / MARKER).is_file():
        return None
    try:
        with shelve.open(str(shelf), "r") as cached:
            cached[ROOT_NODE]
    except Exception as exc:  # any failure to read it means rebuild: dbm, pickle, OS errors
        log.warning("OPC-UA address space cache %s is unreadable (%s); rebuilding it", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    # asyncua looks for the shelf's own file; dbm.dumb writes only aspace.dat/.dir beside it
    if not shelf.is_file() and not shelf.with_suffix(".db").is_file():
        shelf.touch()
    return shelf


def new_shelf(folder: Path) -> Path | None:
    """A path in a fresh temporary folder beside `folder` for asyncua to write the shelf to,
    or None where the cache cannot be written (read-only, nearly full)."""
    parent = folder.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(parent).free
        if free < MIN_FREE_BYTES or not os.access(parent, os.W_OK):
            log.info("no OPC-UA address space cache: %s is read-only or nearly full", parent)
            return None
        return Path(tempfile.mkdtemp(prefix=".building-", dir=parent)) / SHELF_NAME
    except OSError as exc:
        log.info("no OPC-UA address space cache in %s: %s", parent, exc)
        return None


def commit_shelf(shelf: Path, folder: Path) -> None:
    """Mark the shelf asyncua wrote complete and move its folder into place."""
    building = shelf.parent
    try:
        (building / MARKER).write_text("asyncua standard address space\n")
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)
    except OSError as exc:
        log.info("OPC-UA address space cache not kept: %s", exc)
        with contextlib.suppress(OSError):
            shutil.rmtree(building)
