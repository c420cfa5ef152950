#!/bin/sh
# build.sh ARCH BINDIR VERSION OUTDIR: make OUTDIR/callbox_VERSION_ARCH.deb
# from the stripped binaries in BINDIR (callboxd, callbox) and the files in
# systemd/, with plain dpkg-deb. Run as any user (--root-owner-group).
#
#   ARCH     Debian architecture of the binaries: amd64 or arm64
#   BINDIR   directory holding callboxd and callbox (built with -s -w)
#   VERSION  Debian version, native (no '-'), e.g. 0.1.0+git42.gabc1234
#   OUTDIR   where the .deb goes (created if missing)
#
# Environment:
#   SOURCE_DATE_EPOCH  timestamp of every file and of the changelog entry;
#                      default: the time of the git HEAD commit, so that two
#                      builds of one commit give the same bytes.
#   DEB_MAINTAINER     the Maintainer field (see MAINTAINER below).
set -eu

usage() {
	echo "usage: $0 ARCH BINDIR VERSION OUTDIR" >&2
	exit 2
}
die() {
	echo "build.sh: $*" >&2
	exit 1
}

[ $# -eq 4 ] || usage
arch=$1
bindir=$2
version=$3
outdir=$4

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# A placeholder until the project has a public address; override per build.
MAINTAINER=${DEB_MAINTAINER:-callbox maintainers <callbox@example.org>}

for tool in dpkg-deb gzip md5sum; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install dpkg gzip coreutils)"
done

case $arch in
amd64) machine=62 ;;  # EM_X86_64
arm64) machine=183 ;; # EM_AARCH64
*) die "architecture $arch: only amd64 and arm64 are supported" ;;
esac

# Native package: the project is its own upstream, so no Debian revision.
case $version in
*-*) die "version $version: must be native (no '-')" ;;
[0-9]*) ;;
*) die "version $version: must start with a digit" ;;
esac
if dpkg --validate-version "$version" >/dev/null 2>&1; then :; else
	die "version $version: not a valid Debian version"
fi

# elf_machine FILE: print the ELF e_machine of FILE, or nothing if not ELF.
elf_machine() {
	[ "$(od -An -c -N4 "$1" | tr -d ' ')" = '177ELF' ] || return 0
	# e_machine is a little-endian uint16 at offset 18 (both our arches are LE).
	od -An -tu2 -j18 -N2 "$1" | tr -d ' '
}
for b in callboxd callbox; do
	[ -f "$bindir/$b" ] || die "$bindir/$b: missing (make build / make arm64)"
	m=$(elf_machine "$bindir/$b")
	[ -n "$m" ] || die "$bindir/$b: not an ELF binary"
	[ "$m" = "$machine" ] || die "$bindir/$b: ELF machine $m, want $machine for $arch"
done
for f in systemd/callbox.service systemd/callbox.sysusers systemd/callbox.tmpfiles \
	systemd/callbox.toml README.md; do
	[ -f "$top/$f" ] || die "$top/$f: missing"
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

umask 022
mkdir -p "$outdir"
stage=$(mktemp -d "${TMPDIR:-/tmp}/callbox-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
trap 'exit 1' HUP INT TERM
root=$stage/root

install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/callbox" \
	"$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
	"$root/usr/share/doc/callbox" "$root/usr/share/man/man1" "$root/usr/share/man/man8" \
	"$root/usr/share/lintian/overrides"
install -m 0755 "$bindir/callboxd" "$bindir/callbox" "$root/usr/bin/"
install -m 0644 "$top/systemd/callbox.service" "$root/usr/lib/systemd/system/callbox.service"
install -m 0644 "$top/systemd/callbox.sysusers" "$root/usr/lib/sysusers.d/callbox.conf"
install -m 0644 "$top/systemd/callbox.tmpfiles" "$root/usr/lib/tmpfiles.d/callbox.conf"
install -m 0644 "$top/systemd/callbox.toml" "$root/etc/callbox/callbox.toml"
install -m 0644 "$top/README.md" "$root/usr/share/doc/callbox/README.md"
install -m 0644 "$here/copyright" "$root/usr/share/doc/callbox/copyright"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/callbox"
gzip -9n <"$here/callboxd.8" >"$root/usr/share/man/man8/callboxd.8.gz"
gzip -9n <"$here/callbox.1" >"$root/usr/share/man/man1/callbox.1.gz"

# Debian changelog of a native package: one entry per build, dated by the
# commit so that the bytes are reproducible.
date=$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
{
	echo "callbox ($version) bookworm; urgency=medium"
	echo
	echo "  * Build of callbox $version."
	echo
	echo " -- $MAINTAINER  $date"
} | gzip -9n >"$root/usr/share/doc/callbox/changelog.gz"
chmod 0644 "$root/usr/share/doc/callbox/changelog.gz" \
	"$root/usr/share/man/man8/callboxd.8.gz" "$root/usr/share/man/man1/callbox.1.gz"

for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done
echo /etc/callbox/callbox.toml >"$root/DEBIAN/conffiles"

# md5sums of every shipped file except conffiles (dpkg records those itself).
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print) | sed 's|^\./||' |
	LC_ALL=C sort >"$stage/files"
sed 's|^/||' "$root/DEBIAN/conffiles" >"$stage/conffiles"
grep -vxF -f "$stage/conffiles" "$stage/files" |
	(cd "$root" && while IFS= read -r f; do md5sum "$f"; done) >"$root/DEBIAN/md5sums"

# Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, one
# per directory or link.
size=$(find "$root" -path "$root/DEBIAN" -prune -o \( -type f -printf '%s\n' \) -o \( ! -path "$root" -printf '1024\n' \) |
	awk '{ k += int(($1 + 1023) / 1024) } END { print k }')

sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
	-e "s|@MAINTAINER@|$MAINTAINER|" "$here/control.in" >"$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
out=$outdir/callbox_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
