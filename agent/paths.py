"""Where shipped files live: beside the source tree, or where the .deb installs them."""

from __future__ import annotations

from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_INSTALLED = Path("/usr/share/lineside")


def firmware_configs() -> Path:
    """The `firmware-configs/` directory (register maps and example sites)."""
    for base in (_REPO, _INSTALLED):
        candidate = base / "firmware-configs"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "firmware-configs/ not found beside the source tree or in /usr/share/lineside"
    )
