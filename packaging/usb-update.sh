#!/bin/sh
# Installed as /usr/lib/lineside/usb-update; run by lineside-usb@.service as the lineside
# user, after lineside-usb-mount@.service has mounted the stick read-only:
#   usb-update sdb1
# Runs `lineside bundle usb` on the stick when it has a lineside/ entry (it installs the
# newest valid bundle and writes the result into this unit's runtime directory, which the
# mount unit copies onto the stick). Exit status: that of `lineside bundle usb` (0 installed,
# 3 nothing installed), 0 for a stick without a lineside/ folder.
set -eu

name=${1:?usage: usb-update KERNEL-NAME}
mnt=/run/lineside-usb/$name
site=/etc/lineside/site.toml

if [ ! -e "$mnt/lineside" ] && [ ! -L "$mnt/lineside" ]; then
    echo "usb-update: no lineside/ folder on /dev/$name; leaving it alone"
    exit 0
fi
set -- --result-file "${RUNTIME_DIRECTORY:?}/lineside-result.txt"
if [ -f "$site" ]; then
    set -- "$@" --config "$site"
fi
exec /usr/bin/lineside bundle usb "$mnt" "$@"
