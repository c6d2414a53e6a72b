"""A stick built by an attacker, through `lineside bundle usb MOUNTPOINT` as the unit runs it.

Each stick is a directory tree laid out as the mounted stick would be. Every class is refused
with its reason, nothing outside the stick is touched, the valid bundle beside the junk is
still installed, and a bounded result file is written.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.bundles.refusals import MAX_DETAIL_CHARS
from agent.bundles.stick import RESULT_NAME, RESULT_TEMP
from agent.bundles.store import ModelStore
from agent.cli.main import main as lineside
from tests.bundle_kit import gnu_long_name_tar, head_only, signed_manifest
from tests.helpers import REPO


def stick_with(tmp_path: Path, kit: dict[str, Any], valid: bool = True) -> Path:
    """A stick with a `lineside/` folder, holding v2 when `valid`."""
    folder = tmp_path / "stick" / "lineside"
    folder.mkdir(parents=True)
    if valid:
        shutil.copy(kit["v2"], folder / "model-2.bundle")
    return tmp_path / "stick"


def usb_args(kit: dict[str, Any], tmp_path: Path, stick: Path) -> list[str]:
    state = ["--state-dir", str(tmp_path / "state"), "--trust", str(kit["trust_dir"])]
    return ["bundle", "usb", str(stick), *state]


def result_lines(stick: Path) -> list[str]:
    path = stick / "lineside" / RESULT_NAME
    assert path.is_file() and not path.is_symlink()
    return path.read_text().splitlines()


def line_of(lines: list[str], name: str) -> str:
    (line,) = [ln for ln in lines if ln.startswith(f"{name}: ")]
    return line


def run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`lineside ...` in a child process that also reports its own peak RSS (KiB) on stdout.

    The peak is VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across fork and
    execve, so a child of this (torch-sized) test process would report the parent's peak."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from agent.cli.main import main
        rc = main({args!r})
        sys.stdout.flush()
        with open("/proc/self/status") as f:
            rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
        print(json.dumps({{"rc": rc, "rss": rss}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_links_at_the_result_names_are_replaced_never_followed(
    kit: dict[str, Any], tmp_path: Path
) -> None:
    stick = stick_with(tmp_path, kit)
    outside = {name: tmp_path / f"outside-{name}" for name in ("tmp", "result")}
    for path in outside.values():
        path.write_text("the journal, a key, the store\n")
    folder = stick / "lineside"
    (folder / RESULT_TEMP).symlink_to(outside["tmp"])
    (folder / RESULT_NAME).symlink_to(outside["result"])
    assert lineside(usb_args(kit, tmp_path, stick)) == 0
    for path in outside.values():
        assert path.read_text() == "the journal, a key, the store\n"
    assert "INSTALLED" in result_lines(stick)[0]
    assert (folder / RESULT_TEMP).is_symlink()  # never opened, left as it was
    assert ModelStore(tmp_path / "state").current_version() == 2


def test_a_symlinked_lineside_folder_is_refused_and_nothing_read(
    kit: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = tmp_path / "host-dir"
    host.mkdir()
    shutil.copy(kit["v2"], host / "model-2.bundle")
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "lineside").symlink_to(host)
    assert lineside(usb_args(kit, tmp_path, stick)) == 3
    err = capsys.readouterr().err
    assert "refused (unsafe-path): lineside/ on the stick is a symbolic link" in err
    assert sorted(p.name for p in host.iterdir()) == ["model-2.bundle"]  # no result written
    assert ModelStore(tmp_path / "state").current_version() is None


def test_fifos_at_the_temp_name_the_result_name_and_a_bundle_name_never_block(
    kit: dict[str, Any], tmp_path: Path
) -> None:
    stick = stick_with(tmp_path, kit)
    folder = stick / "lineside"
    for name in (RESULT_TEMP, RESULT_NAME, "model-9.bundle"):
        os.mkfifo(folder / name)
    (folder / "model-8.bundle").symlink_to(kit["v3"])  # a valid bundle, but through a link
    (folder / "model-7.bundle").mkdir()
    done = run_cli(usb_args(kit, tmp_path, stick), timeout=120)  # a hang fails here
    assert json.loads(done.stdout.splitlines()[-1])["rc"] == 0, done.stderr
    lines = result_lines(stick)
    assert "not a regular file" in line_of(lines, "model-9.bundle")
    assert "refused (unreadable): model-8.bundle is a symlink" in line_of(lines, "model-8.bundle")
    assert "not a regular file" in line_of(lines, "model-7.bundle")
    assert "installed model 2" in line_of(lines, "model-2.bundle")
    assert ModelStore(tmp_path / "state").current_version() == 2  # never v3 through the link


@pytest.mark.parametrize("depth", [2_000, 4_000])
def test_a_deeply_nested_signature_is_a_refusal_and_the_valid_bundle_still_installs(
    kit: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], depth: int
) -> None:
    stick = stick_with(tmp_path, kit)
    manifest = json.dumps({"format": 1, "model_version": 9}).encode()
    junk = head_only(stick / "lineside" / "model-9.bundle", manifest, b"[" * depth + b"]" * depth)
    trust = ["--trust", str(kit["trust_dir"])]
    assert lineside(["bundle", "verify", str(junk), *trust]) == 3
    err = capsys.readouterr().err
    reason = "signature-malformed" if depth * 2 <= 4096 else "oversized"
    assert err.startswith(f"lineside bundle: refused ({reason}): ")
    assert lineside(usb_args(kit, tmp_path, stick)) == 0
    lines = result_lines(stick)
    assert f"refused ({reason})" in line_of(lines, "model-9.bundle")
    assert "installed model 2" in line_of(lines, "model-2.bundle")
    assert ModelStore(tmp_path / "state").current_version() == 2


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_32_mib_gnu_long_name_is_refused_in_bounded_text_and_memory(
    kit: dict[str, Any], tmp_path: Path, compressed: bool
) -> None:
    stick = stick_with(tmp_path, kit, valid=False)
    bad = gnu_long_name_tar(tmp_path / "long.tar", 32 << 20)
    target = stick / "lineside" / "model-9.bundle"
    if compressed:
        with bad.open("rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        assert target.stat().st_size < 200_000  # a small file on the stick
    else:
        shutil.move(bad, target)
    done = run_cli(usb_args(kit, tmp_path, stick))
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["rc"] == 3
    assert len(done.stderr) < MAX_DETAIL_CHARS + 200, done.stderr[:500]
    reason = "not-an-archive" if compressed else "oversized"
    assert f"refused ({reason})" in done.stderr
    result = (stick / "lineside" / RESULT_NAME).read_text()
    assert len(result) < 4_000 and f"refused ({reason})" in result
    log = (tmp_path / "state" / "updates.log").read_text()
    assert len(log) < 4_000 and reason in log
    assert report["rss"] < 150 * 1024, f"peak RSS {report['rss']} KiB"


def test_a_signed_manifest_with_a_malformed_files_entry_is_refused(
    kit: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stick = stick_with(tmp_path, kit)
    edits = {
        "model-9.bundle": lambda m: m.update(model_version=9, files={"vae.onnx": 3}),
        "model-8.bundle": lambda m: m.update(model_version=8, files=[]),
        "model-7.bundle": lambda m: m["files"]["vae.onnx"].update(size="big"),
        "model-6.bundle": lambda m: m.update(model_version=6, models={"fp32": ["vae.onnx"]}),
        "model-5.bundle": lambda m: m.update(model_version=5, golden={"file": {"x": 1}}),
    }
    for name, edit in edits.items():
        signed_manifest(kit, stick / "lineside" / name, edit)
    trust = ["--trust", str(kit["trust_dir"])]
    assert lineside(["bundle", "verify", str(stick / "lineside" / "model-9.bundle"), *trust]) == 3
    assert capsys.readouterr().err.startswith("lineside bundle: refused (bad-manifest): ")
    assert lineside(usb_args(kit, tmp_path, stick)) == 0
    lines = result_lines(stick)
    for name in edits:
        assert "refused (bad-manifest)" in line_of(lines, name), lines
    assert ModelStore(tmp_path / "state").current_version() == 2


def test_attacker_names_are_escaped_and_cut_in_every_line(
    kit: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stick = stick_with(tmp_path, kit, valid=False)
    name = "\x1b[2J\x1b]0;owned\x07" + "x" * 230 + ".bundle"
    shutil.copy(kit["other_key"], stick / "lineside" / name)  # not a tar file at all
    result_file = tmp_path / "run" / "result.txt"
    result_file.parent.mkdir()
    argv = [*usb_args(kit, tmp_path, stick), "--result-file", str(result_file)]
    assert lineside(argv) == 3
    err = capsys.readouterr().err
    text = (stick / "lineside" / RESULT_NAME).read_text()
    assert result_file.read_text() == text  # the copy the mount unit puts on a read-only stick
    log = (tmp_path / "state" / "updates.log").read_text()
    for shown in (err, text, log):
        assert "\x1b" not in shown and "\x07" not in shown
        assert "x" * 201 not in shown
    assert "refused (not-an-archive)" in text
