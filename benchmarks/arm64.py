"""The device side on ARM64, emulated: the arm64 image's venv built for real, then detection.

    python benchmarks/arm64.py [--bundle DIR] [--rows 900]      (root; make arm64-check)

1. A Debian bookworm arm64 root (debootstrap --arch=arm64 under qemu-user-static, cached as a
   tarball in ~/.cache/lineside/roots like the system tests' root) is unpacked fresh.
2. Inside it (systemd-nspawn, every arm64 binary run by qemu-aarch64 through binfmt_misc) the
   device venv is installed from the same requirements as Dockerfile.arm64: `pip install .` of
   pyproject.toml, agent/ and export/, no extras, then the same check that torch, onnx and
   optimum are absent. pip keeps its download cache in ~/.cache/lineside/pip-arm64.
3. A bundle trained on this host (torch stays here) and a CSV of the simulated line with the
   demo's five faults go in; `lineside score` replays the CSV through the live detectors on
   both sides. The table gives each fault's detection and delay on each, false alarms, how far
   the scores differ, and the times. Every arm64 figure is EMULATED (qemu-user on this x86_64
   CPU), so it says nothing about a real ARM core's speed; only the results are comparable.

Needs root, network access to the Debian mirror and PyPI, systemd-container, debootstrap and
qemu-user-static (make debian-deps). Not part of `make test`: the emulated pip install and
onnxruntime import take minutes, too long for CI on every run.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.demo.schedule import FaultRecord, plan  # noqa: E402
from agent.demo.simulator.process import SIGNAL_NAMES, ExtrusionLine  # noqa: E402
from tests.system.debian_root import ARM64_ROOT, cached_root, missing_tools, unpack  # noqa: E402

PIP_CACHE = Path.home() / ".cache" / "lineside" / "pip-arm64"
SOURCES = ("pyproject.toml", "agent", "export")  # what Dockerfile.arm64 copies and installs
VENV_CHECK = (
    "import importlib.util as u, sys; "
    "bad = [m for m in ('torch', 'onnx', 'optimum') if u.find_spec(m)]; "
    "sys.exit('workstation-only packages in the venv: %s' % bad if bad else 0)"
)


def train(work: Path) -> Path:
    """A bundle from the real export path on this host (torch)."""
    from agent.demo.run import write_historian
    from agent.paths import firmware_configs
    from export.pipeline import TrainOptions, run_train

    write_historian(work / "historian.csv", rows=7200, seed=11)
    out = work / "bundle"
    run_train(
        TrainOptions(
            inputs=[work / "historian.csv"], out=out, epochs=25, seed=0, quiet=True,
            tag_map=firmware_configs() / "plc" / "simulated-extruder.toml",
        )
    )  # fmt: skip
    return out


def write_faults(path: Path, rows: int, seed: int = 2024) -> list[FaultRecord]:
    """The simulated line for `rows` seconds with the demo's faults spread over it."""
    records = plan(float(rows))
    line = ExtrusionLine(seed=seed)
    start = 1_767_225_600
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", *SIGNAL_NAMES])
        for t in range(rows):
            for r in records:
                if t == int(r.injected_at):
                    line.inject(r.planned.make())
                if t == int(r.cleared_at):
                    line.clear(r.planned.signal)
            row = line.step()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + t))
            writer.writerow([stamp, *(f"{v:.4f}" for v in row)])
    return records


def pip_passthrough() -> list[str]:
    """nspawn arguments that give pip inside the same CA bundle and constraints as this host's
    pip (its configuration: a TLS-inspecting proxy's CA, the pinned versions); files read-only."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                          capture_output=True, text=True)  # fmt: skip
    args = []
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        path = Path(value.strip("'\""))
        if option in ("cert", "constraint") and path.is_file():
            args += [f"--bind-ro={path}", f"--setenv=PIP_{option.upper()}={path}"]
    return list(dict.fromkeys(args))


def nspawn(root: Path, script: str, timeout: float, check: bool = True) -> tuple[str, float]:
    """Run a shell script in the arm64 root (not booted); its output and seconds."""
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    cmd = ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit",
           "--resolv-conf=copy-host", f"--bind={PIP_CACHE}:/root/.cache/pip",
           "--setenv=PIP_DISABLE_PIP_VERSION_CHECK=1", *pip_passthrough(),
           "/bin/sh", "-ec", script]  # fmt: skip
    began = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    took = time.monotonic() - began
    if proc.returncode != 0 and not check:
        tail = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()][-1:]
        return f"FAILED (exit {proc.returncode}: {' '.join(tail)[:60]})", took
    if proc.returncode != 0:
        sys.exit(f"in the arm64 root: exit {proc.returncode}\n{proc.stdout[-3000:]}"
                 f"\n{proc.stderr[-3000:]}")  # fmt: skip
    return proc.stdout, took


def score_rows(path: Path) -> list[dict[str, str]]:
    """The rows `lineside score` wrote."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def detection(rows: list[dict[str, str]], records: list[FaultRecord]) -> list[str]:
    """Per fault 'yes, N s' or 'MISSED', then the false alarm count (anomaly onsets outside)."""
    flags = [r["anomaly"] == "1" for r in rows]
    out = []
    for rec in records:
        hits = [t for t in range(len(flags)) if flags[t] and rec.covers(float(t))]
        out.append(f"yes, {hits[0] - rec.injected_at:.0f} s" if hits else "MISSED")
    onsets = [t for t in range(len(flags)) if flags[t] and (t == 0 or not flags[t - 1])]
    false = [t for t in onsets if not any(r.covers(float(t)) for r in records)]
    out.append(str(len(false)))
    return out


def main() -> int:
    """Build, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: train one)")
    parser.add_argument("--rows", type=int, default=900, help="seconds of simulated line")
    parser.add_argument(
        "--onnxruntime", help="pin this onnxruntime version in the arm64 venv after the install"
    )
    args = parser.parse_args()
    why = missing_tools(ARM64_ROOT) or (
        None if shutil.which("systemd-nspawn") else "systemd-nspawn is not installed"
    )
    if why:
        sys.exit(f"arm64 check: {why}")
    work = Path(tempfile.mkdtemp(prefix="lineside-arm64-", dir="/var/tmp"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    """The measurement itself, in `work`."""
    began = time.monotonic()
    tarball = cached_root(ARM64_ROOT)
    root_s = time.monotonic() - began
    root = unpack(tarball, work / "root")
    src, data = root / "srv/lineside-src", root / "srv/lineside-data"
    src.mkdir(parents=True)
    for item in SOURCES:
        if (REPO / item).is_dir():
            shutil.copytree(REPO / item, src / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / item, src / item)

    install = (
        "python3 -m venv /opt/lineside/venv\n"
        "/opt/lineside/venv/bin/pip install --quiet /srv/lineside-src\n"
        f'/opt/lineside/venv/bin/python -c "{VENV_CHECK}"\n'
    )
    if args.onnxruntime:
        install += f"/opt/lineside/venv/bin/pip install --quiet onnxruntime=={args.onnxruntime}\n"
    _, pip_s = nspawn(root, install, 3600)
    imports = {}
    for module in ("numpy", "pymodbus", "asyncua", "cryptography", "onnxruntime", "agent.cli.main"):
        code = f"import {module}; print('ok')"
        imports[module] = nspawn(root, f'/opt/lineside/venv/bin/python -c "{code}"', 900, False)
    print(f"arm64 device venv under qemu-user, EMULATED (host {platform.machine()})")
    print(f"{'pip install of the device venv (s)':44} {pip_s:>18.0f}")
    print(f"{'arm64 root ready (s; cold = debootstrap)':44} {root_s:>18.0f}")
    for module, (result, seconds) in imports.items():
        print(f"{'import ' + module:44} {result.strip():>18} {seconds:>8.1f} s")
    if any(result.strip() != "ok" for result, _ in imports.values()):
        print("detection: NOT RUN on arm64 (an import failed under emulation; see above)")
        return 1
    bundle = args.bundle or train(work)
    csv_path = work / "faults.csv"
    records = write_faults(csv_path, args.rows)
    shutil.copytree(bundle, data / "bundle")
    shutil.copy(csv_path, data / "faults.csv")
    probe = (
        "import platform, numpy, onnxruntime as o; "
        "print(platform.machine(), o.__version__, numpy.__version__, o.get_available_providers())"
    )
    about, import_s = nspawn(root, f'/opt/lineside/venv/bin/python -c "{probe}"', 900)
    score = (
        "/opt/lineside/venv/bin/lineside score --bundle /srv/lineside-data/bundle "
        "--input /srv/lineside-data/faults.csv --output /srv/lineside-data/arm64.csv"
    )
    _, arm_s = nspawn(root, score, 1800)

    host_out = work / "host.csv"
    host_began = time.monotonic()
    host_cmd = [sys.executable, "-m", "agent", "score", "--bundle", str(bundle),
                "--input", str(csv_path), "--output", str(host_out)]  # fmt: skip
    subprocess.run(host_cmd, check=True, capture_output=True)
    host_s = time.monotonic() - host_began

    host_rows, arm_rows = score_rows(host_out), score_rows(data / "arm64.csv")
    assert len(host_rows) == len(arm_rows) == args.rows
    pairs = list(zip(host_rows, arm_rows, strict=True))
    same_flags = sum(h["anomaly"] == a["anomaly"] for h, a in pairs)
    diffs = [abs(float(h["score"]) - float(a["score"])) for h, a in pairs
             if h["score"] and a["score"]]  # fmt: skip
    host_det, arm_det = detection(host_rows, records), detection(arm_rows, records)

    machine, ort_version, numpy_version, providers = about.strip().split(" ", 3)
    print(f"arm64 device venv under qemu-user ({machine}; onnxruntime {ort_version}, numpy "
          f"{numpy_version}, providers {providers}); host {platform.machine()}")  # fmt: skip
    print(f"{'':44} {'host ' + platform.machine():>18} {'arm64 (EMULATED)':>18}")
    for rec, h, a in zip(records, host_det, arm_det, strict=False):
        print(f"{'fault: ' + rec.planned.text:44} {h:>18} {a:>18}")
    print(f"{'false alarms (onsets outside the faults)':44} {host_det[-1]:>18} {arm_det[-1]:>18}")
    print(f"{'anomaly flag agrees (rows)':44} {'':>18} {f'{same_flags}/{len(host_rows)}':>18}")
    print(f"{'largest |score difference|':44} {'':>18} {max(diffs, default=0.0):>18.2e}")
    print(f"{f'lineside score, {args.rows} rows (s)':44} {host_s:>18.1f} {arm_s:>18.1f}")
    print(f"{'python start + numpy + onnxruntime (s)':44} {'':>18} {import_s:>18.1f}")
    # On arm64 the question is parity with the host: the same flag on every row.
    return 1 if arm_det != host_det or same_flags != len(host_rows) else 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
