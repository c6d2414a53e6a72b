"""The README's two commands on a fresh machine: what `make demo` and `make test` install.

`make -n` prints what make would run without running it, in a scratch copy of the Makefile and
pyproject.toml, so these tests see the real recipes and their order and install nothing. The
full proof, a demo built in a clean venv with the Debian dev packages hidden, is .ci/fresh-demo,
which `make test` runs last.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.packaging_helpers import require

ROOT = Path(__file__).resolve().parents[2]
FRESH_DEMO = ROOT / ".ci" / "fresh-demo"
INSTALL = re.compile(r"pip install --quiet -e '\.\[([a-z,]*)\]'")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A directory with this Makefile and pyproject.toml, and no .venv yet."""
    require("make")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def dry_run(clone: Path, target: str) -> list[str]:
    """The commands `make TARGET` would run, one per line."""
    # Run by `make test` itself, make's own MAKEFLAGS/MAKELEVEL would reach this make too.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", target], cwd=clone, capture_output=True,
        text=True, timeout=30, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def extras_installed(commands: list[str]) -> list[str]:
    """Each `pip install -e .[...]` of the recipes, as its extras."""
    return [m.group(1) for line in commands if (m := INSTALL.search(line))]


def touch_stamps(clone: Path, commands: list[str]) -> None:
    """Do what the recipes' `touch STAMP` lines would: the state after a real run."""
    for line in commands:
        if line.startswith("touch "):
            stamp = clone / line.split()[1]
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()


def test_make_demo_installs_only_the_export_extra(clone: Path) -> None:
    commands = dry_run(clone, "demo")
    assert extras_installed(commands) == ["export"]
    assert not any("apt-get" in line or "dpkg" in line for line in commands)
    assert commands[-1].split()[:2] == [".venv/bin/lineside", "demo"]


def test_systemd_python_is_only_in_the_systemd_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    holders = [
        name
        for name, requirements in project["optional-dependencies"].items()
        if any(r.startswith("systemd-python") for r in requirements)
    ]
    assert holders == ["systemd"]
    assert not any(r.startswith("systemd-python") for r in project["dependencies"])


def test_make_test_installs_the_systemd_extra_after_the_debian_packages(clone: Path) -> None:
    commands = dry_run(clone, "test")
    assert extras_installed(commands) == ["export", "export,dev", "export,dev,systemd"]
    apt = next(i for i, line in enumerate(commands) if "apt-get install" in line)
    systemd = next(i for i, line in enumerate(commands) if "dev,systemd]" in line)
    assert apt < systemd
    pytest_run = commands.index(".venv/bin/python -m pytest")
    (last,) = commands[pytest_run + 1 :]
    assert last.endswith(" ./.ci/fresh-demo")
    # Whatever asks for the systemd layer gets the Debian packages first, not only `test`.
    stamp = next(c.split()[1] for c in commands if c.startswith("touch .venv/.test-installed-"))
    layer = dry_run(clone, stamp)
    assert "apt-get install" in "".join(layer[: layer.index(commands[systemd])])


def test_make_test_after_make_demo_still_installs_dev_and_systemd(clone: Path) -> None:
    touch_stamps(clone, dry_run(clone, "demo"))
    commands = dry_run(clone, "test")
    assert extras_installed(commands) == ["export,dev", "export,dev,systemd"]
    assert not any("torch" in line for line in commands)  # the demo's layer stays
    touch_stamps(clone, commands)
    assert extras_installed(dry_run(clone, "demo")) == []  # and the demo after the test


def test_an_edited_pyproject_reinstalls(clone: Path) -> None:
    touch_stamps(clone, dry_run(clone, "test"))
    pyproject = clone / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# edited\n")
    assert extras_installed(dry_run(clone, "demo")) == ["export"]


def test_fresh_demo_script_is_posix_sh_and_shellcheck_clean() -> None:
    require("shellcheck")
    assert FRESH_DEMO.read_text().startswith("#!/bin/sh\n")
    assert FRESH_DEMO.stat().st_mode & 0o111
    assert subprocess.run(["sh", "-n", str(FRESH_DEMO)]).returncode == 0
    lint = subprocess.run(["shellcheck", str(FRESH_DEMO)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
