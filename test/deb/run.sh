#!/usr/bin/env bash
# test/deb/run.sh [BINDIR VERSION [ARM64_BINDIR]]: build the amd64 callbox
# package, lint it, and install, upgrade, remove and purge it inside a
# throwaway Debian 12 root (debootstrap minbase + systemd + libasound2 +
# libspeexdsp1 + libopus0, cached as a tarball in
# ${XDG_CACHE_HOME:-$HOME/.cache}/callbox/); then, with ARM64_BINDIR, the
# arm64 package (what a Raspberry Pi installs) into a Debian 12 and a
# Debian 13 root. Needs root (chroot), and debootstrap, lintian and
# systemd-analyze on the host (qemu-user-static for the arm64 binaries).
# The host's /etc, /var and systemd are never touched: every maintainer
# script runs inside the chroot, and nothing is mounted.
#
# BINDIR holds stripped amd64 callboxd and callbox (make build); without
# arguments the script builds them itself into its work directory.
# ARM64_BINDIR holds the arm64 ones (make arm64); without it the arm64
# rounds are skipped, and said so.
# CALLBOX_DEB_MIRROR overrides the Debian mirror for the first, cold run.
#
# Three rounds in one root, unpacked fresh from the cached tarball; each
# round ends with a purge, which is where the next one starts:
#   A  systemd not running (a chroot, an image build): install, reinstall,
#      upgrade with an edited conffile and an identity key, remove, purge.
#   B  systemd "running": /run/systemd/system exists and systemctl is a stub
#      that logs; checks start, restart on upgrade, an admin's disable
#      surviving an upgrade, stop on remove.
#   C  fallbacks: no systemd-sysusers and no init-system-helpers, so the
#      user comes from useradd and the enable link is made by hand.
# Then the arm64 package, once per Debian release (D: 12 bookworm, E: 13
# trixie, the base of current Raspberry Pi OS): install (its dependencies
# must resolve to that release's arm64 packages: alsa is libasound2t64 on
# 13), the user, unit, config and state directory, callboxd run under
# qemu-user against the root's arm64 libraries, upgrade keeping the
# identity key, purge removing it. These roots are amd64 ones with arm64
# added as a foreign architecture (dpkg --add-architecture) and the arm64
# libraries installed: the arm64 package's dependencies resolve against
# arm64 packages exactly as on a Pi, while its shell maintainer scripts
# run natively. A pure arm64 root would need every one of its programs
# run under emulation: binfmt_misc is machine-wide (and not mounted
# here), and debootstrap's second stage under qemu-user takes a long time
# on a 2-core machine.
#
# The checks are shell code in single quotes, run by eval later (SC2016);
# the variables they name are used there (SC2034).
# shellcheck disable=SC2016,SC2034
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "test/deb: must run as root (chroot)" >&2; exit 1; }
for t in dpkg-deb debootstrap lintian systemd-analyze chroot tar gzip; do
	command -v "$t" >/dev/null || {
		echo "test/deb: $t is missing: apt-get install debootstrap lintian systemd" >&2
		exit 1
	}
done

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/packaging/deb/build.sh
suite=bookworm
include=systemd,libasound2,libspeexdsp1,libopus0
mirror=${CALLBOX_DEB_MIRROR:-http://deb.debian.org/debian}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/callbox
tarball=$cache/debootstrap-$suite-minbase-${include//,/-}.tar.gz
# The arm64 rounds: per release, what debootstrap includes and the arm64
# packages installed next to it (what the arm64 package depends on, by
# that release's names).
arm64_bookworm_include=systemd
arm64_bookworm_libs=libc6,libasound2,libspeexdsp1,libopus0
arm64_trixie_include=systemd
arm64_trixie_libs=libc6,libasound2t64,libspeexdsp1,libopus0
started=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/var/tmp}/callbox-deb-test.XXXXXX")
root=$work/root
cleanup() {
	# Nothing is mounted by this script; refuse to delete if something is.
	if grep -q " $work/" /proc/mounts; then
		echo "test/deb: mounts left under $work, not deleting it" >&2
		return
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
# check DESCRIPTION SHELL-CODE: run the code (eval, in this shell), count
# the result.
check() {
	if eval "$2"; then ok "$1"; else bad "$1"; fi
}
# in_root COMMAND...: run COMMAND inside the chroot with a clean environment.
in_root() {
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
		DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
}
dpkg_in() { in_root dpkg --force-confold "$@" >>"$work/dpkg.log" 2>&1; }

# Pinned once, so that a commit landing during the run cannot make two
# builds differ.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

# --- binaries and packages ---------------------------------------------
bindir_arm64=
if [ $# -ge 2 ]; then
	bindir=$1
	version=$2
	bindir_arm64=${3:-}
else
	bindir=$work/bin
	version=0.1.0+test
	echo "building callboxd and callbox into $bindir"
	# The flags the Makefile uses: PIE, RELRO with BIND_NOW, the C parts
	# fortified.
	(cd "$top" && CGO_ENABLED=1 \
		CGO_CFLAGS="-O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong -I$top/device/camera/v4l2shim" \
		"${GO:-$(command -v go || echo /usr/local/go/bin/go)}" build -buildmode=pie -trimpath -ldflags "-s -w -bindnow -X main.version=$version" \
		-o "$bindir/" ./cmd/callboxd ./cmd/callbox)
fi
# The upgrade: the same binaries under a higher version.
version2=$version+up1
dpkg --compare-versions "$version2" gt "$version"

# Three builds side by side (xz is the slow part): v1, v1 again, v2.
sh "$build" amd64 "$bindir" "$version" "$work/out1" >"$work/build1.log" 2>&1 &
b1=$!
sh "$build" amd64 "$bindir" "$version" "$work/out3" >"$work/build3.log" 2>&1 &
b3=$!
sh "$build" amd64 "$bindir" "$version2" "$work/out2" >"$work/build2.log" 2>&1 ||
	{ cat "$work/build2.log"; exit 1; }
wait "$b1" || { cat "$work/build1.log"; exit 1; }
wait "$b3" || { cat "$work/build3.log"; exit 1; }
deb1=$(tail -1 "$work/build1.log")
deb2=$(tail -1 "$work/build2.log")
again=$(tail -1 "$work/build3.log")
if [ -n "$bindir_arm64" ]; then
	sh "$build" arm64 "$bindir_arm64" "$version" "$work/out1" >"$work/build4.log" 2>&1 &
	b4=$!
	sh "$build" arm64 "$bindir_arm64" "$version2" "$work/out2" >"$work/build5.log" 2>&1 ||
		{ cat "$work/build5.log"; exit 1; }
	wait "$b4" || { cat "$work/build4.log"; exit 1; }
	arm1=$(tail -1 "$work/build4.log")
	arm2=$(tail -1 "$work/build5.log")
fi
check "two builds of one version are byte-identical" 'cmp -s "$deb1" "$again"'

check "lintian: no error or warning" \
	'lintian --fail-on error,warning "$deb1" ${arm1:+"$arm1"} >"$work/lintian.log" 2>&1'
grep -v 'running with root privileges' "$work/lintian.log" || true

# Contents: exactly these files, everything root:root 0755 or 0644.
dpkg-deb --fsys-tarfile "$deb1" | tar -tvf - >"$work/contents"
check "contents: every entry root/root, 0755 or 0644" \
	'awk '\''$2 != "root/root" || $1 !~ /^(drwxr-xr-x|-rwxr-xr-x|-rw-r--r--)$/ { print; bad = 1 }
	END { exit bad }'\'' "$work/contents"'
awk '$1 !~ /^d/ { print $6 }' "$work/contents" | sort >"$work/files"
cat >"$work/want" <<'LIST'
./etc/callbox/callbox.toml
./usr/bin/callbox
./usr/bin/callboxd
./usr/lib/systemd/system/callbox.service
./usr/lib/sysusers.d/callbox.conf
./usr/lib/tmpfiles.d/callbox.conf
./usr/share/doc/callbox/README.md
./usr/share/doc/callbox/changelog.gz
./usr/share/doc/callbox/copyright
./usr/share/lintian/overrides/callbox
./usr/share/man/man1/callbox.1.gz
./usr/share/man/man8/callboxd.8.gz
LIST
check "contents: exactly the expected files" 'diff -u "$work/want" "$work/files"'
check "control: conffiles lists /etc/callbox/callbox.toml" \
	'dpkg-deb --info "$deb1" conffiles | grep -qx /etc/callbox/callbox.toml'
check "control: Version is $version" '[ "$(dpkg-deb --field "$deb1" Version)" = "$version" ]'

# man_has_flags BINARY MANPAGE: the page names every flag of the binary.
man_has_flags() {
	local f esc missing=""
	for f in $("$1" -h 2>&1 | sed -n 's/^  -\([a-z-]*\).*/\1/p'); do
		esc="\\-${f//-/\\-}"
		grep -qE -- "^\.BI? $(printf '%s' "$esc" | sed 's/\\/\\\\/g')( |\$)" "$2" ||
			missing="$missing -$f"
	done
	[ -z "$missing" ] || { echo "  $2 lacks:$missing"; return 1; }
}
check "callboxd.8 documents every callboxd flag" \
	'man_has_flags "$bindir/callboxd" "$top/packaging/deb/callboxd.8"'
check "callbox.1 documents every callbox flag" \
	'man_has_flags "$bindir/callbox" "$top/packaging/deb/callbox.1"'

# --- the throwaway root ------------------------------------------------------
# make_root TARBALL SUITE INCLUDE [ARM64_LIBS]: debootstrap SUITE (minbase
# plus INCLUDE) into TARBALL once; with ARM64_LIBS, add arm64 as a foreign
# architecture and install those arm64 packages with the root's own apt.
make_root() {
	local tb=$1 su=$2 inc=$3 libs=${4:-} boot=$work/boot
	[ -f "$tb" ] && return
	echo "no cached root: debootstrap $su from $mirror (once)"
	mkdir -p "$cache"
	debootstrap --variant=minbase --include="$inc" "$su" "$boot" "$mirror" \
		>"$work/debootstrap.log" 2>&1 || {
		tail -20 "$work/debootstrap.log"
		exit 1
	}
	if [ -n "$libs" ]; then
		cp /etc/resolv.conf "$boot/etc/resolv.conf"
		# shellcheck disable=SC2046 # one word per package
		{
			chroot "$boot" dpkg --add-architecture arm64 &&
				chroot "$boot" env DEBIAN_FRONTEND=noninteractive apt-get -q update &&
				chroot "$boot" env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
					install $(echo "$libs" | tr , '\n' | sed 's/$/:arm64/')
		} >"$work/apt-arm64.log" 2>&1 || {
			tail -20 "$work/apt-arm64.log"
			exit 1
		}
	fi
	rm -rf "$boot"/var/cache/apt/archives/*.deb "$boot"/var/lib/apt/lists/*
	tar -C "$boot" --numeric-owner -cf - . | gzip -1 >"$tb.tmp"
	mv "$tb.tmp" "$tb"
	rm -rf "${boot:?}"
	echo "cached it as $tb"
}
make_root "$tarball" "$suite" "$include"

wants=/etc/systemd/system/multi-user.target.wants/callbox.service
unit=/usr/lib/systemd/system/callbox.service
# fresh_root [TARBALL V1 V2]: a new root from the cached tarball with the
# two packages in /tmp (default: the amd64 root and packages).
fresh_root() {
	rm -rf "$root"
	mkdir "$root"
	tar -C "$root" --numeric-owner -xzf "${1:-$tarball}"
	cp "${2:-$deb1}" "$root/tmp/v1.deb"
	cp "${3:-$deb2}" "$root/tmp/v2.deb"
	# systemctl is replaced by a stub that logs every call. It answers the
	# runtime verbs itself (nothing starts) and hands the unit-file verbs
	# (preset, enable, is-enabled, ...) to the real one, offline.
	local sc
	sc=$(in_root sh -c 'command -v systemctl')
	mv "$root$sc" "$root$sc.real"
	cat >"$root$sc" <<STUB
#!/bin/sh
echo "\$*" >>/tmp/systemctl.log
for a; do case \$a in -*) ;; *) verb=\$a; break ;; esac; done
case \$verb in
start | stop | restart | try-restart | reload | daemon-reload) exit 0 ;;
is-active) exit 3 ;;
esac
SYSTEMD_OFFLINE=1 exec $sc.real "\$@"
STUB
	chmod 0755 "$root$sc"
	: >"$root/tmp/systemctl.log"
}
status_of() { in_root dpkg-query -W -f='${Status} ${Version}' callbox 2>/dev/null || true; }
mode_of() { in_root stat -c '%a %U:%G' "$1"; }
log_has() { grep -qE "$1" "$root/tmp/systemctl.log"; }
# no_runtime_calls: systemctl was asked to start, stop or reload nothing.
no_runtime_calls() {
	! grep -E '(^| )(start|stop|restart|try-restart|reload|daemon-reload)( |$)' "$root/tmp/systemctl.log"
}
enabled_link_ok() { # the link exists and points at our unit inside the root
	local t
	t=$(readlink "$root$wants") || return 1
	[ -f "$root$t" ] && cmp -s "$root$t" "$root$unit"
}
user_ok() {
	in_root getent passwd callbox |
		grep -qE '^callbox:x:[0-9]+:[0-9]+:[^:]*:/var/lib/callbox:/usr/sbin/nologin$'
}
groups_ok() {
	local g want
	g=" $(in_root id -nG callbox) "
	for want in callbox video audio gpio; do
		case $g in *" $want "*) ;; *)
			echo "  groups:$g"
			return 1
			;;
		esac
	done
}
one_user() { [ "$(grep -c '^callbox:' "$root/etc/passwd")" = 1 ]; }
state_ok() { [ "$(mode_of /var/lib/callbox)" = "700 callbox:callbox" ]; }
key_kept() { [ "$(cat "$root/var/lib/callbox/key.pem")" = KEY ]; }
conf_edited() { grep -qx 'name = "hall"' "$root/etc/callbox/callbox.toml"; }
purged() { [ ! -e "$root/etc/callbox" ] && [ ! -e "$root/var/lib/callbox" ] && [ ! -L "$root$wants" ]; }

# --- A: systemd not running --------------------------------------------------
echo "# A: install into a chroot (systemd not running)"
fresh_root
check "A install v1" 'dpkg_in -i /tmp/v1.deb'
check "A status: installed $version" '[ "$(status_of)" = "install ok installed $version" ]'
for f in /usr/bin/callboxd /usr/bin/callbox; do
	check "A $f 0755 root" '[ "$(mode_of $f)" = "755 root:root" ]'
done
for f in $unit /usr/lib/sysusers.d/callbox.conf /usr/lib/tmpfiles.d/callbox.conf \
	/etc/callbox/callbox.toml /usr/share/doc/callbox/copyright; do
	check "A $f 0644 root" '[ "$(mode_of $f)" = "644 root:root" ]'
done
check "A conffile registered with its md5" \
	'in_root dpkg-query -W -f="\${Conffiles}" callbox |
	grep -qx " /etc/callbox/callbox.toml $(md5sum <"$root/etc/callbox/callbox.toml" | cut -c1-32)"'
check "A dpkg --verify: files match md5sums" 'in_root dpkg --verify callbox'
check "A user callbox: home /var/lib/callbox, shell nologin" user_ok
check "A user callbox in groups callbox video audio gpio" groups_ok
check "A /var/lib/callbox 0700 callbox:callbox" state_ok
check "A enabled: multi-user.target.wants link to the unit" enabled_link_ok
check "A systemd-analyze verify --root is silent" \
	'out=$(systemd-analyze verify --man=no --root="$root" callbox.service 2>&1) &&
	[ -z "$out" ] || { echo "$out"; false; }'
check "A callboxd --version runs inside" 'in_root callboxd --version | grep -qF "$version"'
check "A callbox -version runs inside" 'in_root callbox -version | grep -qF "$version"'
check "A no start, stop or reload while systemd is not running" no_runtime_calls

check "A reinstall v1 (postinst configure again)" 'dpkg_in -i /tmp/v1.deb'
# deb-systemd-helper insists on the environment dpkg gives maintainer scripts.
postinst_by_hand() {
	in_root env DPKG_MAINTSCRIPT_PACKAGE=callbox DPKG_MAINTSCRIPT_NAME=postinst \
		/var/lib/dpkg/info/callbox.postinst configure "$version" >>"$work/dpkg.log" 2>&1
}
check "A postinst configure by hand, twice" 'postinst_by_hand && postinst_by_hand'
check "A still one callbox user, groups intact" 'one_user && groups_ok && state_ok'

# The admin edits the config; the daemon has made its identity key.
echo 'name = "hall"' >>"$root/etc/callbox/callbox.toml"
echo KEY >"$root/var/lib/callbox/key.pem"
in_root chown callbox:callbox /var/lib/callbox/key.pem
in_root chmod 0600 /var/lib/callbox/key.pem
check "A upgrade to $version2" 'dpkg_in -i /tmp/v2.deb'
check "A status: installed $version2" '[ "$(status_of)" = "install ok installed $version2" ]'
check "A upgrade kept the edited conffile, no .dpkg-* left" \
	'conf_edited && ! ls "$root"/etc/callbox/*.dpkg-* 2>/dev/null | grep -q .'
check "A upgrade kept the identity key 0600 callbox" \
	'key_kept && [ "$(mode_of /var/lib/callbox/key.pem)" = "600 callbox:callbox" ] && state_ok'

check "A remove" 'dpkg_in -r callbox'
check "A status: config-files" '[ "$(status_of)" = "deinstall ok config-files $version2" ]'
check "A remove deleted binaries and unit" '[ ! -e "$root/usr/bin/callboxd" ] && [ ! -e "$root$unit" ]'
check "A remove kept /etc/callbox/callbox.toml (edited)" conf_edited
check "A remove kept /var/lib/callbox and the key" 'state_ok && key_kept'
check "A remove kept the user" 'in_root getent passwd callbox >/dev/null'

check "A purge" 'dpkg_in -P callbox'
check "A purge: package unknown to dpkg" '! status_of | grep -q installed'
check "A purge removed /etc/callbox, /var/lib/callbox, the link" purged
check "A purge removed deb-systemd-helper's state" \
	'! ls "$root"/var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q callbox'
check "A purge kept the user (Debian practice)" 'in_root getent passwd callbox >/dev/null'
check "A no start, stop or reload in the whole round" no_runtime_calls

# Rounds B and C go on in the same root (unpacking it is the slow part):
# each round ends with a purge, which is a realistic start too.

# --- B: systemd running (stub) -----------------------------------------------
echo "# B: systemd running (a stub systemctl logs what it is asked)"
mkdir -p "$root/run/systemd/system"
: >"$root/tmp/systemctl.log"
check "B install v1" 'dpkg_in -i /tmp/v1.deb'
check "B install: daemon-reload, then start" \
	'log_has daemon-reload && log_has "(^| )start callbox\.service$"'
: >"$root/tmp/systemctl.log"
check "B upgrade to $version2" 'dpkg_in -i /tmp/v2.deb'
check "B upgrade: restart, no stop" \
	'log_has "(^| )restart callbox\.service$" && ! log_has "(^| )stop callbox"'
# The admin disables the unit: what systemctl disable does to the link.
rm -f "$root$wants"
: >"$root/tmp/systemctl.log"
check "B reinstall after the admin's disable" 'dpkg_in -i /tmp/v2.deb'
check "B the admin's disable survives: no link, no (re)start" \
	'[ ! -L "$root$wants" ] && ! log_has "(^| )(re)?start callbox"'
: >"$root/tmp/systemctl.log"
check "B remove" 'dpkg_in -r callbox'
check "B remove: stop, then daemon-reload" \
	'grep -E "stop callbox|daemon-reload" "$root/tmp/systemctl.log" | tr "\n" " " |
	grep -qE "stop callbox\.service .*daemon-reload"'
check "B remove kept /var/lib/callbox" 'test -d "$root/var/lib/callbox"'
check "B purge" 'dpkg_in -P callbox'
check "B purge removed /etc/callbox, /var/lib/callbox" \
	'[ ! -e "$root/etc/callbox" ] && [ ! -e "$root/var/lib/callbox" ]'

# --- C: fallbacks ------------------------------------------------------------
echo "# C: no systemd-sysusers, no init-system-helpers"
rm -rf "$root/run/systemd/system"
in_root userdel callbox
in_root groupdel gpio
check "C starts without user callbox and group gpio" \
	'! in_root getent passwd callbox && ! in_root getent group callbox gpio'
for t in systemd-sysusers deb-systemd-helper deb-systemd-invoke; do
	p=$(in_root sh -c "command -v $t")
	mv "$root$p" "$root$p.hidden"
done
check "C install v1" 'dpkg_in -i /tmp/v1.deb'
check "C user callbox (useradd): home, shell" user_ok
check "C user callbox in groups callbox video audio gpio" groups_ok
check "C gpio is a system group" '[ "$(in_root getent group gpio | cut -d: -f3)" -lt 1000 ]'
check "C /var/lib/callbox 0700 callbox:callbox" state_ok
check "C enabled by a hand-made link" enabled_link_ok
check "C upgrade to $version2" 'dpkg_in -i /tmp/v2.deb'
check "C still one callbox user, groups intact" 'one_user && groups_ok'
check "C purge" 'dpkg_in -P callbox'
check "C purge removed /etc/callbox, /var/lib/callbox, the link" purged

# --- D, E: the arm64 package on Debian 12 and 13 ----------------------------
arm64_installed() { # PKG,PKG...: each installed for arm64 in the root
	local p
	for p in ${1//,/ }; do
		in_root dpkg-query -W -f='${Status}\n' "$p:arm64" 2>/dev/null | grep -qx "install ok installed" ||
			{ echo "  $p:arm64 is not installed"; return 1; }
	done
}
arm64_round() { # ROUND SUITE
	local r=$1 su=$2 inc libs tb
	inc=arm64_${su}_include
	libs=arm64_${su}_libs
	inc=${!inc}
	libs=${!libs}
	tb=$cache/debootstrap-$su-minbase-${inc//,/-}+arm64-${libs//,/-}.tar.gz
	make_root "$tb" "$su" "$inc" "$libs"
	echo "# $r: the arm64 package on Debian $(tar -xzOf "$tb" ./etc/debian_version) ($su)"
	fresh_root "$tb" "$arm1" "$arm2"
	check "$r install the arm64 package: its dependencies resolve" 'dpkg_in -i /tmp/v1.deb'
	check "$r status: installed $version, arm64" \
		'[ "$(in_root dpkg-query -W -f="\${Status} \${Version} \${Architecture}" callbox)" = "install ok installed $version arm64" ]'
	check "$r nothing half-installed (dpkg --audit)" '[ -z "$(in_root dpkg --audit)" ]'
	# What satisfied each dependency: the release's arm64 packages.
	check "$r dependencies met by: $(echo "$libs" | tr , ' ') (arm64)" 'arm64_installed "$libs"'
	check "$r user callbox: home, shell; groups callbox video audio gpio" 'user_ok && groups_ok'
	check "$r /var/lib/callbox 0700 callbox:callbox" state_ok
	check "$r unit and config in place, unit enabled" \
		'[ "$(mode_of $unit)" = "644 root:root" ] && [ "$(mode_of /etc/callbox/callbox.toml)" = "644 root:root" ] && enabled_link_ok'
	# The release's own systemd judges the unit (the host's is older
	# than Debian 13's and does not know its units' newer keys).
	check "$r the release's systemd-analyze verify is silent" \
		'out=$(in_root systemd-analyze verify --man=no callbox.service 2>&1) &&
		[ -z "$out" ] || { echo "$out"; false; }'
	if command -v qemu-aarch64-static >/dev/null; then
		cp "$(command -v qemu-aarch64-static)" "$root/usr/bin/"
		check "$r callboxd runs (qemu-user) with the root's arm64 libraries" \
			'in_root qemu-aarch64-static /usr/bin/callboxd -version | grep -qF "$version"'
		check "$r callbox runs (qemu-user)" \
			'in_root qemu-aarch64-static /usr/bin/callbox -version | grep -qF "$version"'
	else
		bad "$r qemu-aarch64-static missing: apt-get install qemu-user-static"
	fi
	echo KEY >"$root/var/lib/callbox/key.pem"
	in_root chown callbox:callbox /var/lib/callbox/key.pem
	in_root chmod 0600 /var/lib/callbox/key.pem
	echo 'name = "hall"' >>"$root/etc/callbox/callbox.toml"
	check "$r upgrade to $version2" 'dpkg_in -i /tmp/v2.deb'
	check "$r upgrade kept the identity key and the edited config" \
		'key_kept && [ "$(mode_of /var/lib/callbox/key.pem)" = "600 callbox:callbox" ] && state_ok && conf_edited'
	check "$r purge" 'dpkg_in -P callbox'
	check "$r purge removed /etc/callbox, /var/lib/callbox, the link" purged
	check "$r no start, stop or reload while systemd is not running" no_runtime_calls
}
if [ -n "$bindir_arm64" ]; then
	arm64_round D bookworm
	arm64_round E trixie
else
	echo "SKIPPED the arm64 rounds (Debian 12 and 13): no ARM64_BINDIR given (make test-deb gives it)"
fi

echo "deb test took $(($(date +%s) - started)) s"
if [ "$fail" -gt 0 ]; then
	echo "--- dpkg output"
	cat "$work/dpkg.log"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
