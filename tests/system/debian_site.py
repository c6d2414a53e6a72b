"""The .deb installed into a booted Debian and put into service as an admin would: a model, a
site config, a trusted SCADA client certificate, the simulator as the PLC."""

from __future__ import annotations

import json
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tests.system.booted import STAGING, BootedDebian

SITE = "/etc/lineside/site.toml"
STATE = "/var/lib/lineside"
# Not /run: like /tmp it is a tmpfs inside the container, hidden from the host-side path.
DROPINS = "/etc/systemd/system/lineside.service.d"
SIMULATOR_UNIT = "lineside-simulator"


def free_port() -> int:
    """A TCP port free on loopback now (the container shares the host's network)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    """Until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class DebianSite:
    """The booted Debian with lineside installed and configured (not yet started)."""

    box: BootedDebian
    opcua_port: int
    plc_port: int
    client_cert: Path
    client_key: Path
    client_uri: str
    before: frozenset[str]  # the root's files before the package went in
    owned: frozenset[str]  # what dpkg-query -L says the package installed
    stick: str = ""  # the host's loop device bound in as a USB stick

    @property
    def endpoint(self) -> str:
        """The agent's OPC-UA endpoint, as reached from the host."""
        return f"opc.tcp://127.0.0.1:{self.opcua_port}/lineside"

    def stage(self, src: Path, name: str) -> str:
        """Copy a host file into the container's staging folder; returns its path inside."""
        dest = self.box.path(f"/{STAGING}/{name}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copy(src, dest)
        return f"/{STAGING}/{name}"

    def start(self, timeout: float = 90.0) -> float:
        """`systemctl start lineside` (after clearing the start limit); returns its seconds."""
        self.box.run(["systemctl", "reset-failed", "lineside"], check=False)
        began = time.monotonic()
        self.box.run(["systemctl", "start", "lineside"], timeout=timeout)
        return time.monotonic() - began

    def stop(self, timeout: float = 60.0) -> float:
        """`systemctl stop lineside`; returns its seconds."""
        began = time.monotonic()
        self.box.run(["systemctl", "stop", "lineside"], timeout=timeout)
        return time.monotonic() - began

    def dropin(self, name: str, text: str | None) -> None:
        """Write (or with None remove) a runtime drop-in of lineside.service, then reload."""
        path = self.box.path(f"{DROPINS}/{name}.conf")
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.box.run(["systemctl", "daemon-reload"])

    def journal(self, *args: str) -> list[dict[str, str]]:
        """journalctl -u lineside ARGS as JSON records."""
        out = self.box.run(["journalctl", "-u", "lineside", "-o", "json", "--no-pager", *args])
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def messages(self, *args: str) -> str:
        """The MESSAGE text of lineside's journal records, one per line."""
        return "\n".join(str(r.get("MESSAGE", "")) for r in self.journal(*args))


# Places that change on their own (logs, caches, apt and dpkg state, systemd's own state).
VOLATILE = ("proc/", "sys/", "dev/", "run/", "tmp/", "var/log/", "var/cache/",
            "var/lib/dpkg/", "var/lib/apt/", "var/lib/systemd/", "var/lib/private/",
            "srv/lineside-test/", "var/tmp/systemd-private-")  # fmt: skip


def files_of(root: Path) -> frozenset[str]:
    """Every path under `root`, relative, outside VOLATILE (directories end with '/')."""
    out = set()
    for path in root.rglob("*"):
        rel = str(path.relative_to(root)) + ("/" if path.is_dir() and not path.is_symlink() else "")
        if not rel.startswith(VOLATILE):
            out.add(rel)
    return frozenset(out)


def install(box: BootedDebian, deb: Path, bundle: Path, cert: tuple[Path, Path, str]) -> DebianSite:
    """apt install the .deb, the bundle as model 1, the example site with free ports."""
    staged = box.path(f"/{STAGING}")
    staged.mkdir(parents=True, exist_ok=True)
    shutil.copy(deb, staged / deb.name)
    before = files_of(box.root)
    box.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/{STAGING}/{deb.name}"],
            timeout=300)  # fmt: skip
    owned = frozenset(box.run(["dpkg-query", "-L", "lineside"]).stdout.split())
    models = box.path(f"{STATE}/models")
    shutil.copytree(bundle, models / "versions" / "1")
    (models / "current").symlink_to("versions/1")
    trusted = box.path(f"{STATE}/opcua-pki/trusted")
    trusted.mkdir(parents=True)
    shutil.copy(cert[0], trusted / cert[0].name)
    box.run(["chown", "-R", "lineside:lineside", f"{STATE}/models", f"{STATE}/opcua-pki"])

    opcua_port, plc_port = free_port(), free_port()
    example = box.path("/etc/lineside/site.toml.example").read_text()
    site = example.replace("127.0.0.1:4840/", f"127.0.0.1:{opcua_port}/").replace(
        "port = 5020", f"port = {plc_port}"
    )
    assert site != example and f"port = {plc_port}" in site
    box.path(SITE).write_text(site)
    box.run(["systemd-run", f"--unit={SIMULATOR_UNIT}", "--property=DynamicUser=yes",
             "/usr/bin/lineside", "simulate", "--port", str(plc_port)])  # fmt: skip
    wait_for_port(plc_port, 60)
    check = box.run(["runuser", "-u", "lineside", "--", "lineside", "check-config", SITE])
    assert "ok (site" in check.stdout, check.stdout
    return DebianSite(box, opcua_port, plc_port, *cert, before=before, owned=owned)
