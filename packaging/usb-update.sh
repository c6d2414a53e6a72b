#!/bin/sh
# Installed as /usr/lib/lineside/usb-update; run by lineside-usb@.service as root:
#   usb-update /dev/sdb1
# Mounts the stick (nosuid, nodev, noexec) under /run/lineside-usb/, runs
# `lineside bundle usb` as the lineside user when the stick has a lineside/ folder (it
# installs the newest valid bundle and writes lineside/lineside-result.txt), then syncs and
# unmounts so the technician can pull the stick. Exit status: that of `lineside bundle usb`
# (0 installed, 3 nothing installed), 0 for a stick without a lineside/ folder.
set -eu

dev=${1:?usage: usb-update /dev/DEVICE}
name=$(basename "$dev")
mnt=/run/lineside-usb/$name
site=/etc/lineside/site.toml

uid=$(id -u lineside)
gid=$(id -g lineside)
fstype=$(blkid -o value -s TYPE "$dev" || true)
case $fstype in
    vfat|exfat) opts="nosuid,nodev,noexec,uid=$uid,gid=$gid,fmask=0077,dmask=0077" ;;
    *) opts="nosuid,nodev,noexec" ;;
esac

mkdir -p "$mnt"
mount -o "$opts" "$dev" "$mnt"
# Unmount whatever happens, so the stick can be pulled; lazily if something still holds it.
trap 'sync; umount "$mnt" || umount -l "$mnt"; rmdir "$mnt" || true' EXIT

if [ ! -d "$mnt/lineside" ]; then
    echo "usb-update: no lineside/ folder on $dev; leaving it alone"
    exit 0
fi
if [ -f "$site" ]; then
    set -- --config "$site"
else
    set --
fi
status=0
runuser -u lineside -- /usr/bin/lineside bundle usb "$mnt" "$@" || status=$?
echo "usb-update: lineside bundle usb exited $status; see $mnt/lineside/lineside-result.txt"
exit "$status"
