#!/bin/sh
# Installed as /usr/lib/lineside/usb-mount; run by lineside-usb-mount@.service as root:
#   usb-mount mount sdb1     ask PID 1 to mount /dev/sdb1 read-only on /run/lineside-usb/sdb1
#   usb-mount unmount sdb1   unmount it; place the update's result file on the stick first
# It reads nothing on the stick. The mounts are nosuid,nodev,noexec,nosymfollow (no link on
# the stick is followed by any path lookup) and never fsck the stick. The result file goes
# in through a fresh mktemp name and a rename onto lineside/lineside-result.txt, so whatever
# sits at that name (a link, a fifo) is replaced, never opened.
set -eu

action=${1:?usage: usb-mount mount|unmount KERNEL-NAME}
name=${2:?usage: usb-mount mount|unmount KERNEL-NAME}
case $name in
    *[!A-Za-z0-9_-]*) echo "usb-mount: bad device name $name" >&2; exit 2 ;;
esac
dev=/dev/$name
mnt=/run/lineside-usb/$name
rw=/run/lineside-usb/$name.result
result=/run/lineside-usb-result/$name/lineside-result.txt
safe=nosuid,nodev,noexec,nosymfollow
fstype=$(udevadm info --query=property --property=ID_FS_TYPE --value "/sys/class/block/$name")

attach() {  # attach MOUNTPOINT OPTIONS
    systemd-mount --no-ask-password --fsck=no --collect --type="$fstype" \
        --options="$2" "$dev" "$1"
}

case $action in
mount)
    opts=ro,$safe
    case $fstype in
        vfat|exfat) opts="$opts,uid=$(id -u lineside),gid=$(id -g lineside),fmask=0222,dmask=0022" ;;
        ext4|ext3|ext2) ;;
        *) echo "usb-mount: $dev holds $fstype, not vfat, exfat or ext2/3/4" >&2; exit 2 ;;
    esac
    attach "$mnt" "$opts"
    ;;
unmount)
    systemd-umount --no-ask-password "$mnt" || true
    if [ -s "$result" ]; then
        attach "$rw" "rw,$safe"
        # Unmount whatever happens, so the stick can be pulled.
        trap 'sync; systemd-umount --no-ask-password "$rw" || true' EXIT
        if [ -d "$rw/lineside" ] && [ ! -L "$rw/lineside" ]; then
            tmp=$(mktemp -p "$rw/lineside" .lineside-result.XXXXXXXX)
            if cat "$result" >"$tmp" && mv -fT "$tmp" "$rw/lineside/lineside-result.txt"; then
                echo "usb-mount: wrote lineside/lineside-result.txt on $dev"
            else
                rm -f "$tmp"
            fi
        fi
    fi
    ;;
*)
    echo "usb-mount: unknown action $action" >&2
    exit 2
    ;;
esac
