"""Run as lineside.service's ExecStart (a test drop-in): what the sandbox allows, as JSON.

Every check is an attempt, not a reading of the unit: write to each place, open /home, ask for
ptrace, W+X memory and a netlink socket, read our own capabilities and seccomp state; then run
the bundle's int8 model with onnxruntime under all of it. The report goes to
$STATE_DIRECTORY/sandbox-probe.json and stdout. Standard library, numpy and onnxruntime only.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import socket
import sys
from pathlib import Path
from typing import Any

# Places a stray write could go; the service may write only to its own directories.
CANDIDATES = ["/", "/etc", "/etc/lineside", "/usr", "/usr/lib", "/opt", "/opt/lineside/venv",
              "/var", "/var/lib", "/var/lib/lineside", "/var/log", "/var/tmp", "/srv", "/root",
              "/run", "/run/lineside", "/tmp", "/dev/shm", "/boot", "/home", "/lib"]  # fmt: skip


def _mountpoints() -> list[str]:
    """Every mount point this process sees (the 5th field of /proc/self/mountinfo)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if not point.startswith(("/proc", "/sys")):
            points.append(point)
    return points


def _writable(folder: str) -> bool:
    """Whether a new file can be created in `folder` (and removed again)."""
    path = os.path.join(folder, f".sandbox-probe-{os.getpid()}")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.unlink(path)
    return True


def _status_fields() -> dict[str, str]:
    """Our own /proc/self/status, key -> value."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _errno_name(code: int) -> str:
    """EPERM for 1, and so on ("ok" for 0)."""
    return errno.errorcode.get(code, str(code)) if code else "ok"


def _ptrace() -> str:
    """PTRACE_TRACEME through the raw syscall; the filter should answer EPERM."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    rc = libc.ptrace(0, 0, None, None)
    return "ok" if rc == 0 else _errno_name(ctypes.get_errno())


def _write_exec_memory() -> str:
    """An anonymous mapping both writable and executable; MDWE should refuse it."""
    try:
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError as exc:
        return _errno_name(exc.errno or 0)
    m.close()
    return "ok"


def _netlink() -> str:
    """A netlink route socket; RestrictAddressFamilies= should refuse it."""
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    except OSError as exc:
        return _errno_name(exc.errno or 0)
    s.close()
    return "ok"


def _home() -> str:
    """Listing /home (ProtectHome=yes makes it inaccessible)."""
    try:
        os.listdir("/home")
    except OSError as exc:
        return _errno_name(exc.errno or 0)
    return "ok"


def _inference(model: Path) -> dict[str, Any]:
    """One run of the bundle's model on zeros: its output shape, or the error."""
    try:
        import numpy as np
        import onnxruntime as ort

        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        inputs = session.get_inputs()
        feed = {
            i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
            for i in inputs
        }
        outputs = session.run(None, feed)
        return {"ok": True, "shape": list(outputs[0].shape), "providers": session.get_providers()}
    except Exception as exc:  # the report says what failed, whatever it was
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}


def _model(bundle: Path) -> Path:
    """The bundle's int8 model if it has one, else its first ONNX file."""
    int8 = sorted(bundle.glob("*int8*.onnx"))
    return (int8 or sorted(bundle.glob("*.onnx")) or [bundle / "vae.int8.onnx"])[0]


def main() -> int:
    """Probe, write the report, exit 0."""
    state = Path(os.environ.get("STATE_DIRECTORY", "/var/lib/lineside"))
    status = _status_fields()
    folders = sorted(set(CANDIDATES) | set(_mountpoints()))
    report = {
        "uid": os.getuid(),
        "CapEff": status.get("CapEff"),
        "CapPrm": status.get("CapPrm"),
        "NoNewPrivs": status.get("NoNewPrivs"),
        "Seccomp": status.get("Seccomp"),
        "writable": [f for f in folders if os.path.isdir(f) and _writable(f)],
        "home": _home(),
        "ptrace": _ptrace(),
        "write_exec_memory": _write_exec_memory(),
        "netlink": _netlink(),
        "inference": _inference(_model(state / "models" / "current")),
    }
    text = json.dumps(report, sort_keys=True)
    (state / "sandbox-probe.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
