#!/bin/sh
# callbox's post-build script, run after the board's: a box by a door
# must not let anyone log in as root without a password.
set -eu
target=$1

# buildroot leaves root without a password when BR2_TARGET_GENERIC_ROOT_PASSWD
# is empty: lock it instead. The owner sets one (or adds SSH keys) through
# the boot partition: callbox-setup.txt there, /usr/libexec/callbox-boot-import.
sed -i 's,^root::,root:*:,' "$target/etc/shadow"

# dropbear keeps its host keys in /etc/dropbear, which buildroot links to
# /var/run (new keys every boot); the root file system is writable, so
# keep them.
if [ -L "$target/etc/dropbear" ]; then
	rm "$target/etc/dropbear"
	mkdir -m 0700 "$target/etc/dropbear"
fi
