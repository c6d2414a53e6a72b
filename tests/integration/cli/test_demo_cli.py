"""`lineside demo` in a subprocess: a run too short for the fault plan is refused up front."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def test_demo_cli_refuses_a_too_short_run_before_building_anything(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--seconds", "5", "--json",
         "--state-dir", str(tmp_path / "state")],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "raise --seconds or --speedup" in result.stderr
    assert not (tmp_path / "state").exists()
