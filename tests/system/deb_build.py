"""Building the .deb for the system tests: packaging/build-deb.sh with its defaults, timed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO

BUILD_DEB = REPO / "packaging" / "build-deb.sh"


@dataclass(frozen=True)
class BuiltDeb:
    """The package, how long the build took, and every path dpkg-deb was asked to write."""

    path: Path
    seconds: float
    dpkg_deb_outputs: list[str]


def build_deb_prerequisites() -> str | None:
    """Why build-deb.sh cannot run here, or None."""
    for tool in ("dpkg-deb", "dpkg"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (not a Debian-family machine)"
    python = Path("/usr/bin/python3")
    if not python.exists():
        return "/usr/bin/python3 is missing"
    check = "import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))"
    if subprocess.run([python, "-c", check], capture_output=True).returncode != 0:
        return "/usr/bin/python3 is older than 3.11 or lacks venv/ensurepip (python3-venv)"
    return None


def _dpkg_deb_recorder(folder: Path, log: Path) -> Path:
    """A dpkg-deb first on PATH that notes where --build writes, then runs the real one."""
    real = shutil.which("dpkg-deb")
    assert real is not None
    folder.mkdir()
    script = folder / "dpkg-deb"
    script.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" --build "*) for a; do last=$a; done; echo "$last" >>"{log}";; esac\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return folder


def build_deb(work: Path) -> BuiltDeb:
    """Run packaging/build-deb.sh into `work`, with a recorder on dpkg-deb's output path."""
    log = work / "dpkg-deb-outputs.txt"
    shim = _dpkg_deb_recorder(work / "bin", log)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEB_COMPRESSION")}
    env.update(PATH=f"{shim}:{env.get('PATH', '/usr/bin:/bin')}", TMPDIR=str(work))
    started = time.monotonic()
    proc = subprocess.run(
        [str(BUILD_DEB), str(work / "dist")], capture_output=True, text=True, env=env, timeout=580
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"\n.deb build: {seconds:.0f} s", file=sys.stderr)
    (deb,) = (work / "dist").glob("lineside_*.deb")
    outputs = log.read_text().split() if log.exists() else []
    return BuiltDeb(deb, seconds, outputs)
