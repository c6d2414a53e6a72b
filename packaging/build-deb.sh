#!/usr/bin/env bash
# Build lineside_<version>_<arch>.deb for the machine this runs on.
#
#   packaging/build-deb.sh [OUTDIR]        (default: <repo>/dist)
#
# The package carries a self-contained venv in /opt/lineside/venv with the device
# dependencies only (numpy, onnxruntime, pymodbus, pyserial, asyncua and what they pull in);
# never the `export` extra (torch, onnx): that is workstation-only.
#
# Build on the release and architecture you deploy to (e.g. Debian 12 arm64 for an arm64
# line PC): the venv links to this machine's /usr/bin/python3 and holds compiled wheels
# (numpy, onnxruntime) for this architecture, so it only runs on the same Python minor
# version; DEBIAN/control pins that. Cross-building is not supported.
#
# Environment:
#   PYTHON           interpreter for the venv (default /usr/bin/python3; must be the one the
#                    target's python3 package provides, not a pyenv/conda build)
#   DEB_COMPRESSION  dpkg-deb -Z value: gzip (default: the build stays well under 3 minutes;
#                    xz at its default level took over 5 minutes on a 2-core machine), xz, none
#   DEB_COMPRESSION_LEVEL  dpkg-deb -z value (default: dpkg-deb's own for the method)
#   DEBFULLNAME, DEBEMAIL  Maintainer field
# pip's own configuration (PIP_INDEX_URL, PIP_CONSTRAINT, pip.conf) applies to the install.
set -eu
set -o pipefail
umask 022

die() { echo "build-deb: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKG=lineside
VENV_DEST=/opt/lineside/venv
PYTHON=${PYTHON:-/usr/bin/python3}
COMPRESSION=${DEB_COMPRESSION:-gzip}
LEVEL=${DEB_COMPRESSION_LEVEL:-}
OUTDIR=${1:-$ROOT/dist}

for tool in dpkg-deb dpkg "$PYTHON"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install dpkg python3 python3-venv)"
done
case $PYTHON in
    /usr/bin/python3*) ;;
    *) die "PYTHON=$PYTHON: the venv would link to an interpreter the target does not have; use /usr/bin/python3" ;;
esac
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PYTHON is older than 3.11"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || die "$PYTHON lacks venv/ensurepip (apt-get install python3-venv)"

# PEP 440 -> Debian: pre-releases sort before the release with "~" (0.2.0rc1 -> 0.2.0~rc1).
VERSION=$("$PYTHON" - "$ROOT/pyproject.toml" <<'EOF'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    v = tomllib.load(f)["project"]["version"]
print(re.sub(r"\.?(a|b|rc|dev)(\d+)", r"~\1\2", v))
EOF
)
ARCH=$(dpkg --print-architecture)
PY_MINOR=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY_NEXT=$("$PYTHON" -c 'import sys; print("%d.%d" % (sys.version_info[0], sys.version_info[1] + 1))')

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
DEB=$OUTDIR/${PKG}_${VERSION}_${ARCH}.deb

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lineside-deb.XXXXXX")
# The package is written under a temporary name and renamed when complete, so a failed or
# interrupted build never leaves a truncated .deb under the final name.
PARTIAL=$OUTDIR/.${PKG}_${VERSION}_${ARCH}.deb.partial.$$
trap 'rm -rf "$WORK" "$PARTIAL"' EXIT
STAGE=$WORK/root
VENV=$STAGE$VENV_DEST
DOC=$STAGE/usr/share/doc/$PKG

echo "build-deb: $PKG $VERSION ($ARCH, Python $PY_MINOR) -> $DEB"

# --- venv ----------------------------------------------------------------------------
# Install from a clean copy of the sources: `pip install .` in the work tree would reuse a
# stale build/ directory (files since deleted from agent/ would end up in the wheel) and
# leave build/ and *.egg-info behind.
SRC=$WORK/src
mkdir -p "$SRC"
items=""
for item in pyproject.toml setup.cfg setup.py MANIFEST.in README.md README.rst LICENSE agent export; do
    if [ -e "$ROOT/$item" ]; then items="$items $item"; fi
done
# shellcheck disable=SC2086  # $items is a list of plain names without spaces
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - $items | tar -C "$SRC" -xf -

"$PYTHON" -m venv "$VENV"
# No extras: device dependencies only.
"$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check "$SRC"

for forbidden in torch onnx onnxscript optimum transformers; do
    if "$VENV/bin/python" -m pip show --quiet "$forbidden" >/dev/null 2>&1; then
        die "$forbidden ended up in the device venv (workstation-only dependency)"
    fi
done
[ -x "$VENV/bin/lineside" ] || die "console script 'lineside' missing from the venv"
# lineside-export is the workstation's command: it needs torch and onnx, which the device venv
# does not have, so it would only crash there.
rm -f "$VENV/bin/lineside-export"

# The venv was created at $VENV but will live at $VENV_DEST: rewrite the absolute paths
# in scripts' #! lines, activate* and pyvenv.cfg. (.pyc files also record the build path,
# but the import system replaces it with the real source path when it loads them.)
{ grep -rlIF "$VENV" "$VENV" || true; } | while IFS= read -r f; do
    sed -i "s|$VENV|$VENV_DEST|g" "$f"
done
if left=$(grep -rlIF "$STAGE" "$VENV"); then
    die "build paths left in the venv: $left"
fi

# --- files -----------------------------------------------------------------------------
install -d "$STAGE/usr/bin"
cat >"$STAGE/usr/bin/lineside" <<EOF
#!/bin/sh
# Installed by the $PKG package. exec keeps the PID: under systemd the agent itself must be
# the main process (lineside.service has Type=notify, NotifyAccess=main).
exec $VENV_DEST/bin/lineside "\$@"
EOF
chmod 0755 "$STAGE/usr/bin/lineside"

install -D -m 0644 "$ROOT/packaging/lineside.service" "$STAGE/lib/systemd/system/lineside.service"
install -D -m 0644 "$ROOT/packaging/sysusers.d/lineside.conf" "$STAGE/usr/lib/sysusers.d/lineside.conf"
install -D -m 0644 "$ROOT/packaging/tmpfiles.d/lineside.conf" "$STAGE/usr/lib/tmpfiles.d/lineside.conf"
install -D -m 0644 "$ROOT/packaging/99-lineside-serial.rules" \
    "$STAGE/usr/lib/udev/rules.d/99-lineside-serial.rules"
# USB model updates: udev rule -> lineside-usb@.service (as lineside: usb-update ->
# agent/bundles/usb.py), which pulls in lineside-usb-mount@.service (root: usb-mount).
install -D -m 0644 "$ROOT/packaging/99-lineside-usb.rules" "$STAGE/usr/lib/udev/rules.d/99-lineside-usb.rules"
install -D -m 0644 "$ROOT/packaging/lineside-usb@.service" "$STAGE/lib/systemd/system/lineside-usb@.service"
install -D -m 0644 "$ROOT/packaging/lineside-usb-mount@.service" "$STAGE/lib/systemd/system/lineside-usb-mount@.service"
install -D -m 0755 "$ROOT/packaging/usb-update.sh" "$STAGE/usr/lib/lineside/usb-update"
install -D -m 0755 "$ROOT/packaging/usb-mount.sh" "$STAGE/usr/lib/lineside/usb-mount"

install -d "$DOC/examples"
install -m 0644 "$ROOT/packaging/lineside-serial.conf" "$DOC/examples/lineside-serial.conf"
# Register maps and example sites: the agent reads them from /usr/share/lineside/
# firmware-configs (agent/paths.py; `lineside demo` and `simulate` need them). The examples
# keep the sites/ + plc/ layout because site files point at tag maps as "../plc/<name>.toml".
if [ -d "$ROOT/firmware-configs" ]; then
    install -d "$STAGE/usr/share/$PKG"
    tar -C "$ROOT" --exclude=__pycache__ -cf - firmware-configs | tar -C "$STAGE/usr/share/$PKG" -xf -
    for sub in sites plc; do
        for f in "$ROOT/firmware-configs/$sub"/*.toml; do
            if [ -e "$f" ]; then install -D -m 0644 "$f" "$DOC/examples/$sub/$(basename "$f")"; fi
        done
    done
fi
# /etc/lineside/site.toml.example: the example site with device paths (a conffile, so an
# upgrade never overwrites the admin's edits). The admin copies it to site.toml.
install -d -m 0755 "$STAGE/etc/lineside"
sed -e 's|^bundle = .*|bundle = "/var/lib/lineside/models/current"|' \
    -e 's|^path = .*|path = "/var/lib/lineside/events.sqlite"   # heartbeat.json goes next to it|' \
    -e 's|"\.\./plc/|"/usr/share/lineside/firmware-configs/plc/|' \
    -e 's|^catalogue = "\([a-z0-9-]*\)"|catalogue = "/usr/share/lineside/firmware-configs/failure-modes/\1.toml"|' \
    "$ROOT/firmware-configs/sites/demo-extruder.toml" >"$STAGE/etc/lineside/site.toml.example"
grep -q '^bundle = "/var/lib/lineside/models/current"' "$STAGE/etc/lineside/site.toml.example" \
    || die "could not rewrite the example site config's paths"
chmod 0644 "$STAGE/etc/lineside/site.toml.example"

cat >"$DOC/README.Debian" <<'EOF'
lineside for Debian
===================

The service is enabled on installation but not started: a line PC must not poll PLCs before it has a site
configuration, and the unit's ConditionPathExists=/etc/lineside/site.toml skips it until
then. To put it into service:

  1. Write /etc/lineside/site.toml (start from /etc/lineside/site.toml.example; more
     examples in /usr/share/doc/lineside/examples/sites/, PLC register maps in
     /usr/share/lineside/firmware-configs/plc/) and check it:
       sudo -u lineside lineside check-config /etc/lineside/site.toml
  2. Modbus RTU: install the serial drop-in and use the stable names from
     /usr/lib/udev/rules.d/99-lineside-serial.rules (/dev/lineside/rs485-*):
       mkdir -p /etc/systemd/system/lineside.service.d
       cp /usr/share/doc/lineside/examples/lineside-serial.conf \
          /etc/systemd/system/lineside.service.d/serial.conf
  3. systemctl daemon-reload && systemctl start lineside
     journalctl -u lineside -f          (fields: journalctl -u lineside -o verbose)
     lineside events --config /etc/lineside/site.toml --since 1h
  Changes to [detection] and journal retention apply with: systemctl reload lineside

State (journal, model bundles, OPC-UA certificates) lives in /var/lib/lineside and is
removed only by `apt purge lineside`. The Python environment is /opt/lineside/venv.
EOF
cat >"$DOC/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lineside

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
 /opt/lineside/venv bundles third-party Python packages under their own licenses; see the
 *.dist-info directories there.
EOF

# --- DEBIAN/ -------------------------------------------------------------------------------
install -d -m 0755 "$STAGE/DEBIAN"
INSTALLED_KB=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
echo /etc/lineside/site.toml.example >"$STAGE/DEBIAN/conffiles"
chmod 0644 "$STAGE/DEBIAN/conffiles"
cat >"$STAGE/DEBIAN/control" <<EOF
Package: $PKG
Version: $VERSION
Architecture: $ARCH
Maintainer: ${DEBFULLNAME:-Lineside maintainers} <${DEBEMAIL:-lineside@localhost}>
Installed-Size: $INSTALLED_KB
Depends: python3 (>= $PY_MINOR), python3 (<< $PY_NEXT), systemd
Recommends: udev
Section: misc
Priority: optional
Description: edge inference agent: PLC polling, SPC/VAE anomaly detection, OPC-UA
 The lineside daemon polls PLCs over Modbus TCP/RTU and OPC-UA, runs SPC charts and an
 ONNX VAE anomaly detector, and publishes the results as OPC-UA tags for SCADA.
 .
 Ships a private Python $PY_MINOR environment in $VENV_DEST (device dependencies only)
 and a hardened systemd unit, enabled on installation but idle until the site
 configuration /etc/lineside/site.toml exists (ConditionPathExists=).
EOF

# DPKG_ROOT is set (by dpkg --root --force-script-chrootless) when the package goes into
# another root without a chroot, e.g. an image being built or the package test: then every
# change goes there and the running system is left alone.
cat >"$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
ROOT=${DPKG_ROOT:-}
if [ "$1" = configure ]; then
    systemd-sysusers ${ROOT:+"--root=$ROOT"} lineside.conf
    systemd-tmpfiles ${ROOT:+"--root=$ROOT"} --create lineside.conf
    if [ -z "$ROOT" ] && [ -S /run/udev/control ]; then
        udevadm control --reload-rules || true
        # "change", not "add": an add event makes ModemManager & co. probe every serial port.
        udevadm trigger --subsystem-match=tty --action=change || true
    fi
    if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
    # Enabled, never started here: the unit has ConditionPathExists=/etc/lineside/site.toml,
    # so it starts at the next boot (or `systemctl start lineside`) only once the admin has
    # written the site config. An upgrade keeps the admin's choice (was-enabled).
    if [ -n "$ROOT" ]; then
        systemctl --root="$ROOT" enable lineside.service >/dev/null 2>&1
    elif command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper unmask lineside.service >/dev/null || true
        # was-enabled is true on a fresh installation, so that enables the unit.
        if deb-systemd-helper --quiet was-enabled lineside.service; then
            deb-systemd-helper enable lineside.service >/dev/null || true
        else
            deb-systemd-helper update-state lineside.service >/dev/null || true
        fi
    fi
    # Upgrade: a running agent moves to the new code now; a stopped one stays stopped.
    if [ -z "$ROOT" ] && [ -n "${2:-}" ] && [ -d /run/systemd/system ]; then
        deb-systemd-invoke try-restart lineside.service || true
    fi
fi
exit 0
EOF

cat >"$STAGE/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
# On upgrade the agent keeps running until postinst restarts it into the new version.
if [ "$1" = remove ] || [ "$1" = deconfigure ]; then
    if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
        deb-systemd-invoke stop lineside.service || true
    fi
fi
exit 0
EOF

cat >"$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
ROOT=${DPKG_ROOT:-}
case "$1" in
    remove|purge)
        if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
            systemctl --system daemon-reload >/dev/null || true
        fi
        if [ -z "$ROOT" ] && [ -S /run/udev/control ]; then
            udevadm control --reload-rules || true
        fi
        if [ -n "$ROOT" ]; then
            rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/lineside.service"
        fi
        # No Debian package owns /opt, so dpkg removes it with our /opt/lineside when it is
        # empty; the FHS says it exists, so put it back.
        [ -d "$ROOT/opt" ] || install -d -m 0755 "$ROOT/opt"
        ;;
esac
if [ "$1" = purge ]; then
    # Journal, model bundles and OPC-UA certificates go only on purge. The admin's
    # site.toml stays; so does the lineside user (files may still be owned by its UID).
    rm -rf "$ROOT/var/lib/lineside"
    if [ -z "$ROOT" ] && command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper purge lineside.service >/dev/null || true
        deb-systemd-helper unmask lineside.service >/dev/null || true
    fi
fi
exit 0
EOF
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"

# Conffiles (etc/) are left out, as dh_md5sums does: dpkg tracks their sums itself.
(cd "$STAGE" && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/md5sums"

dpkg-deb --build --root-owner-group -Z"$COMPRESSION" ${LEVEL:+"-z$LEVEL"} "$STAGE" "$PARTIAL"
mv -f "$PARTIAL" "$DEB"
echo "build-deb: wrote $DEB ($(du -h "$DEB" | cut -f1))"
