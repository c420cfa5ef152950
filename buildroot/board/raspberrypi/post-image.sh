#!/bin/sh
# callbox's post-image script, run before the board's (which packs every
# file in $BINARIES_DIR/rpi-firmware onto the boot partition): puts
# callbox-setup.txt there, which says what files the owner may add.
set -eu
here=$(dirname "$0")
install -m 0644 "$here/boot/callbox-setup.txt" "$BINARIES_DIR/rpi-firmware/callbox-setup.txt"
