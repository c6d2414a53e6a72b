"""The USB update path in packaging/: udev rule, template unit, mount script, .deb lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.helpers import REPO
from tests.packaging_helpers import parse_udev_rules, require

PACKAGING = REPO / "packaging"
RULE = PACKAGING / "99-lineside-usb.rules"
UNIT = PACKAGING / "lineside-usb@.service"
SCRIPT = PACKAGING / "usb-update.sh"


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


def test_systemd_analyze_verify_usb_unit(tmp_path: Path) -> None:
    require("systemd-analyze")
    root = tmp_path / "root"
    shutil.copytree(Path("/lib/systemd/system"), root / "lib/systemd/system", symlinks=True)
    shutil.copy(UNIT, root / "lib/systemd/system" / UNIT.name)
    stub = root / "usr/lib/lineside/usb-update"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "lineside-usb@sdb1.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    text = UNIT.read_text()
    assert "ExecStart=/usr/lib/lineside/usb-update /dev/%I" in text
    assert "BindsTo=" not in text.split("[Unit]")[1]  # pulling the stick must not kill it


def test_usb_script_passes_shellcheck_and_drops_root_for_the_install() -> None:
    require("shellcheck")
    proc = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    text = SCRIPT.read_text()
    assert "nosuid,nodev,noexec" in text
    assert "runuser -u lineside -- /usr/bin/lineside bundle usb" in text
    assert "umount" in text.split("trap", 1)[1]


def test_build_deb_installs_the_usb_files() -> None:
    text = (PACKAGING / "build-deb.sh").read_text()
    for target in (
        "/usr/lib/udev/rules.d/99-lineside-usb.rules",
        "/lib/systemd/system/lineside-usb@.service",
        "/usr/lib/lineside/usb-update",
    ):
        assert f'"$STAGE{target}"' in text, target
