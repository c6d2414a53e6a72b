"""The USB update path in packaging/: udev rule, template unit, mount script, .deb lines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.packaging_helpers import parse_udev_rules, require

PACKAGING = REPO / "packaging"
RULE = PACKAGING / "99-lineside-usb.rules"
UNIT = PACKAGING / "lineside-usb@.service"
SCRIPT = PACKAGING / "usb-update.sh"
MOUNT_UNIT = PACKAGING / "lineside-usb-mount@.service"
MOUNT_SCRIPT = PACKAGING / "usb-mount.sh"


def test_udev_rule_starts_the_unit_for_usb_filesystems_only() -> None:
    rules = parse_udev_rules(RULE.read_text())
    labels = {v for rule in rules for k, _, _, v in rule if k == "LABEL"}
    gotos = {v for rule in rules for k, _, _, v in rule if k == "GOTO"}
    assert gotos == labels == {"lineside_usb_end"}
    guards = {(k, a, op, v) for rule in rules for k, a, op, v in rule if op == "!="}
    assert ("ACTION", None, "!=", "add") in guards
    assert ("SUBSYSTEM", None, "!=", "block") in guards
    assert ("ENV", "ID_BUS", "!=", "usb") in guards
    assert ("ENV", "ID_FS_USAGE", "!=", "filesystem") in guards
    wants = [v for rule in rules for k, a, op, v in rule if a == "SYSTEMD_WANTS"]
    assert wants == ["lineside-usb@%k.service"]
    assert any(("TAG", None, "+=", "systemd") in rule for rule in rules)


class _Unit:
    """The assignments of a unit file by (section, key), in order (enough for these checks)."""

    def __init__(self, text: str) -> None:
        self.pairs: dict[tuple[str, str], list[str]] = {}
        section = ""
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                self.pairs.setdefault((section, key), []).append(value)

    def values(self, section: str, key: str) -> list[str]:
        """Every assignment of a key."""
        return self.pairs.get((section, key), [])

    def last(self, section: str, key: str) -> str | None:
        """The effective value of a single-valued key."""
        found = self.values(section, key)
        return found[-1] if found else None


def parse_unit(text: str) -> _Unit:
    """A unit file's assignments."""
    return _Unit(text)


def _usb_root(tmp_path: Path) -> Path:
    """A --root tree: the host's units, both USB units, stub scripts at their ExecStart paths."""
    require("systemd-analyze")
    root = tmp_path / "root"
    shutil.copytree(Path("/lib/systemd/system"), root / "lib/systemd/system", symlinks=True)
    for unit in (UNIT, MOUNT_UNIT):
        shutil.copy(unit, root / "lib/systemd/system" / unit.name)
    for name in ("usb-update", "usb-mount"):
        stub = root / "usr/lib/lineside" / name
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    return root


@pytest.mark.parametrize("unit", ["lineside-usb@sdb1.service", "lineside-usb-mount@sdb1.service"])
def test_systemd_analyze_verify_usb_units(tmp_path: Path, unit: str) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={_usb_root(tmp_path)}", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    text = UNIT.read_text()
    assert "ExecStart=/usr/lib/lineside/usb-update %I" in text
    assert "BindsTo=" not in text.split("[Unit]")[1]  # pulling the stick must not kill it


@pytest.mark.parametrize(
    ("unit", "threshold"),
    [("lineside-usb@sdb1.service", 15), ("lineside-usb-mount@sdb1.service", 20)],
    ids=["update (as lineside)", "mount (root)"],
)
def test_systemd_analyze_security_exposure_of_the_usb_units(
    tmp_path: Path, unit: str, threshold: int
) -> None:
    """The parsing part at most 1.5 (lineside.service's bound), the privileged part 2.0."""
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--threshold={threshold}",
         f"--root={_usb_root(tmp_path)}", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    m = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    assert float(m.group(1)) <= threshold / 10, proc.stdout
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_only_mounting_runs_privileged() -> None:
    update = parse_unit(UNIT.read_text())
    mount = parse_unit(MOUNT_UNIT.read_text())
    svc = "Service"
    assert update.last(svc, "User") == "lineside" and update.last(svc, "Group") == "lineside"
    assert update.last(svc, "CapabilityBoundingSet") == ""
    assert update.last(svc, "PrivateNetwork") == "yes"
    assert update.last(svc, "RuntimeMaxSec") == "15min"
    assert update.last(svc, "MemoryMax") and update.last(svc, "TasksMax")
    assert update.values("Unit", "Requires") == ["lineside-usb-mount@%i.service"]
    assert mount.last(svc, "User") is None  # root, with one capability and no network
    assert mount.last(svc, "CapabilityBoundingSet") == "CAP_DAC_OVERRIDE"
    assert mount.last(svc, "PrivateNetwork") == "yes"
    assert mount.last(svc, "MemoryMax") and mount.last(svc, "TasksMax")
    assert mount.last("Unit", "StopWhenUnneeded") == "yes"  # unmounts when the update ends


def test_usb_scripts_pass_shellcheck_mount_read_only_and_drop_root_for_the_install() -> None:
    require("shellcheck")
    for script in (SCRIPT, MOUNT_SCRIPT):
        proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
    mount = MOUNT_SCRIPT.read_text()
    assert "safe=nosuid,nodev,noexec,nosymfollow" in mount
    assert "opts=ro,$safe" in mount and "--fsck=no" in mount
    assert "mktemp -p" in mount and "mv -fT" in mount  # the result: new name, then a rename
    assert "systemd-umount" in mount.split("trap", 1)[1]
    update = SCRIPT.read_text()
    assert "exec /usr/bin/lineside bundle usb" in update and "--result-file" in update
    commands = [ln for ln in update.splitlines() if not ln.lstrip().startswith("#")]
    assert not any(w in ln.split() for ln in commands for w in ("mount", "runuser", "sudo"))


def test_build_deb_installs_the_usb_files() -> None:
    text = (PACKAGING / "build-deb.sh").read_text()
    for target in (
        "/usr/lib/udev/rules.d/99-lineside-usb.rules",
        "/lib/systemd/system/lineside-usb@.service",
        "/usr/lib/lineside/usb-update",
        "/lib/systemd/system/lineside-usb-mount@.service",
        "/usr/lib/lineside/usb-mount",
    ):
        assert f'"$STAGE{target}"' in text, target
