"""`lineside-export keygen|sign` and `lineside bundle verify|install|usb`: files, exit codes."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.bundles.store import ModelStore
from agent.bundles.usb import RESULT_NAME
from agent.cli.main import main as lineside
from export.cli import main as lineside_export
from tests.bundle_kit import flip_member_byte, variant


@pytest.fixture(scope="module")
def kit_via_cli() -> bool:
    """The kit's key and bundle files come from `lineside-export keygen|sign` themselves."""
    return True


def test_keygen_writes_a_private_key_only_its_owner_reads(kit: dict[str, Any]) -> None:
    key: Path = kit["key"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert key.with_suffix(".pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_sign_refuses_a_directory_that_is_not_a_bundle(
    kit: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sign", str(tmp_path), "--key", str(kit["key"]), "--out", str(tmp_path / "x")]
    assert lineside_export(argv) == 2
    assert "not a valid bundle" in capsys.readouterr().err


def test_verify_accepts_then_refuses_a_tampered_file(
    kit: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = kit["v2"]
    assert lineside(["bundle", "verify", str(good), "--trust", str(kit["trust_dir"])]) == 0
    assert "ok: model 2" in capsys.readouterr().out
    bad = flip_member_byte(good, tmp_path / "bad.bundle", "vae.int8.onnx")
    assert lineside(["bundle", "verify", str(bad), "--trust", str(kit["trust_dir"])]) == 3
    err = capsys.readouterr().err
    assert err.startswith("lineside bundle: refused (hash-mismatch): vae.int8.onnx")
    assert err.count("\n") == 1


def test_usage_errors_exit_2(kit: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as usage:
        lineside(["bundle", "verify"])
    assert usage.value.code == 2
    empty = tmp_path / "empty-trust"
    empty.mkdir()
    assert lineside(["bundle", "verify", str(kit["v1"]), "--trust", str(empty)]) == 2
    bad_site = tmp_path / "site.toml"
    bad_site.write_text("[line]\nname = 3\n")
    argv = ["bundle", "verify", str(kit["v1"]), "--trust", str(kit["trust_dir"])]
    assert lineside([*argv, "--config", str(bad_site)]) == 2


def test_install_then_downgrade_refused(
    kit: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(tmp_path / "state"), "--trust", str(kit["trust_dir"])]
    assert lineside(["bundle", "install", str(kit["v2"]), *state]) == 0
    assert "installed model 2" in capsys.readouterr().out
    assert lineside(["bundle", "install", str(kit["v1"]), *state]) == 3
    assert "refused (downgrade)" in capsys.readouterr().err
    assert lineside(["bundle", "install", str(kit["v1"]), *state, "--allow-downgrade"]) == 0
    assert ModelStore(tmp_path / "state").current_version() == 1


def test_a_real_process_exits_3_with_one_line(kit: dict[str, Any], tmp_path: Path) -> None:
    bad = flip_member_byte(kit["v1"], tmp_path / "bad.bundle", "manifest.json")
    argv = [
        sys.executable,
        "-m",
        "agent",
        "bundle",
        "verify",
        str(bad),
        "--trust",
        str(kit["trust_dir"]),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr.startswith("lineside bundle: refused (bad-signature): ")
    assert done.stderr.count("\n") == 1


def test_usb_stick_installs_the_newest_valid_bundle_and_says_so(
    kit: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stick = tmp_path / "stick"
    (stick / "lineside").mkdir(parents=True)
    flip_member_byte(kit["v3"], stick / "lineside" / "model-3.bundle", "vae.onnx")
    shutil.copy(kit["v2"], stick / "lineside" / "model-2.bundle")
    shutil.copy(kit["v1"], stick / "lineside" / "model-1.bundle")
    (stick / "lineside" / "notes.txt").write_text("not a bundle")
    state = ["--state-dir", str(tmp_path / "state"), "--trust", str(kit["trust_dir"])]
    assert lineside(["bundle", "usb", str(stick), *state]) == 0
    result = (stick / "lineside" / RESULT_NAME).read_text().splitlines()
    assert "INSTALLED" in result[0]
    assert result[1].startswith("model-3.bundle: refused (hash-mismatch)")
    assert result[2].startswith("model-2.bundle: installed model 2")
    assert len(result) == 3  # model 1 was never tried: an older one than what got installed
    assert ModelStore(tmp_path / "state").current_version() == 2
    capsys.readouterr()
    assert lineside(["bundle", "usb", str(stick), *state]) == 3  # nothing new on the stick
    result = (stick / "lineside" / RESULT_NAME).read_text().splitlines()
    assert "NOTHING INSTALLED" in result[0]
    assert all("refused" in line for line in result[1:]) and len(result) == 4


def test_usb_stick_without_bundles(kit: dict[str, Any], tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    (stick / "lineside").mkdir(parents=True)
    state = ["--state-dir", str(tmp_path / "state"), "--trust", str(kit["trust_dir"])]
    assert lineside(["bundle", "usb", str(stick), *state]) == 3
    assert "no *.bundle files" in (stick / "lineside" / RESULT_NAME).read_text()


def test_key_rotation_two_trusted_keys_and_a_removed_one(
    kit: dict[str, Any], bundle_dir: Path, tmp_path: Path
) -> None:
    assert lineside_export(["keygen", "--out", str(tmp_path / "new-keys")]) == 0
    (new_key,) = (tmp_path / "new-keys").glob("*.key")
    src = variant(bundle_dir, tmp_path / "dir", 5)
    new_file = tmp_path / "new.bundle"
    assert lineside_export(["sign", str(src), "--key", str(new_key), "--out", str(new_file)]) == 0
    trust = tmp_path / "trust"
    shutil.copytree(kit["trust_dir"], trust)
    assert lineside(["bundle", "verify", str(new_file), "--trust", str(trust)]) == 3  # unknown
    shutil.copy(new_key.with_suffix(".pub"), trust)
    for bundle in (new_file, kit["v1"]):  # both keys trusted during the rotation
        assert lineside(["bundle", "verify", str(bundle), "--trust", str(trust)]) == 0
    (trust / kit["key"].with_suffix(".pub").name).unlink()  # the old key retired
    assert lineside(["bundle", "verify", str(kit["v1"]), "--trust", str(trust)]) == 3
    (trust / "junk.pub").write_text("not a key")
    assert lineside(["bundle", "verify", str(new_file), "--trust", str(trust)]) == 2


def test_root_does_not_write_into_the_agents_store(kit: dict[str, Any], tmp_path: Path) -> None:
    import os

    state = tmp_path / "state"
    state.mkdir()
    if os.geteuid() == 0:
        os.chown(state, 4242, 4242)
        argv = ["bundle", "install", str(kit["v1"]), "--state-dir", str(state)]
        assert lineside([*argv, "--trust", str(kit["trust_dir"])]) == 2
        assert list(state.iterdir()) == []
    else:  # an ordinary user installs into its own store
        argv = ["bundle", "install", str(kit["v1"]), "--state-dir", str(state)]
        assert lineside([*argv, "--trust", str(kit["trust_dir"])]) == 0
