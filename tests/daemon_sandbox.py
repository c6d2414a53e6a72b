"""Run a command under the kernel rules lineside.service asks systemd for, without systemd.

    python -m tests.daemon_sandbox -- COMMAND...

Applies, in this order, then execs COMMAND (both rules survive execve):
- PR_SET_NO_NEW_PRIVS (NoNewPrivileges=yes; also required to load a seccomp filter);
- PR_SET_MDWE with PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3+): what MemoryDenyWriteExecute=yes
  enforces; systemd builds it from seccomp rules on mmap/mprotect, the kernel flag is stricter;
- a seccomp filter through libseccomp (ctypes): allow exactly @system-service minus
  @privileged as this machine's `systemd-analyze syscall-filter` expands them, EPERM for every
  other syscall (SystemCallErrorNumber=EPERM), native architecture only
  (SystemCallArchitectures=native: libseccomp's default for other architectures is kill).

Before exec it checks that the rules bite: a W+X mapping and chroot() must fail with EPERM.
Not covered: the namespace, mount and capability options of the unit (ProtectSystem= etc.).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import subprocess
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000


def scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def syscall_groups() -> dict[str, list[str]]:
    """Every @group of `systemd-analyze syscall-filter` and its members (names or @groups)."""
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(name: str, groups: dict[str, list[str]]) -> set[str]:
    """The syscall names of a group, nested groups included."""
    names: set[str] = set()
    for member in groups[name]:
        names |= expand(member, groups) if member.startswith("@") else {member}
    return names


def allowed_syscalls() -> set[str]:
    """SystemCallFilter=@system-service then SystemCallFilter=~@privileged."""
    groups = syscall_groups()
    return expand("@system-service", groups) - expand("@privileged", groups)


def apply(allowed: set[str]) -> int:
    """Install the rules on this process; returns how many syscalls the filter allows."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_MDWE (needs Linux 6.3+)")
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_rule_add.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
    ]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = seccomp.seccomp_init(scmp_act_errno(errno.EPERM))
    if not ctx:
        raise OSError("seccomp_init failed")
    count = 0
    for name in sorted(allowed):
        nr = seccomp.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:  # not a syscall on this architecture (e.g. arm_fadvise64_64 on x86_64)
            continue
        if seccomp.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) != 0:
            raise OSError(f"seccomp_rule_add({name}) failed")
        count += 1
    rc = seccomp.seccomp_load(ctx)
    if rc != 0:
        raise OSError(-rc, "seccomp_load")
    return count


def self_check() -> None:
    """Fail loudly unless both rules are in force."""
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        sys.exit("sandbox: a W+X mapping was allowed: MDWE is not in force")
    try:
        os.chroot("/")  # @privileged: filtered even for root
    except PermissionError:
        pass
    else:
        sys.exit("sandbox: chroot() was allowed: the seccomp filter is not in force")


if __name__ == "__main__":
    command = sys.argv[sys.argv.index("--") + 1 :]
    count = apply(allowed_syscalls())
    self_check()
    print(f"sandbox: MDWE on, seccomp allows {count} syscalls, EPERM otherwise", file=sys.stderr)
    sys.stderr.flush()
    os.execv(command[0], command)
