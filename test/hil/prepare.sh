#!/usr/bin/env bash
# test/hil/prepare.sh ARCH (amd64 or arm64): build, once per Debian kernel
# ABI, what the hardware-in-the-loop rig boots, and print the directory:
#
#   kernel      the kernel to boot (amd64: the uncompressed vmlinux, which
#               boots in ~2.5 s with qboot; arm64: the Image)
#   base.cpio   the base initramfs: busybox, init, glibc, libasound and its
#               data, libspeexdsp (callboxd's echo canceller), libopus (its codec), aplay/arecord, and the modules the scenarios use,
#               including gpio-sim and v4l2loopback built here, and
#               (amd64) bochs, the DRM driver of QEMU's VGA, for /dev/fb0
#   info        kernel release and package version
#
# Everything comes from Debian's archive with `apt-get download` and is
# unpacked with `dpkg -x`: nothing is installed on this machine. The cache
# is ${XDG_CACHE_HOME:-$HOME/.cache}/callbox/hil/<abi>/ (HIL_CACHE overrides
# the part before <abi>); a later run with the same ABI and the same recipe
# (this script, init/, kbuild/) only prints the directory. The security
# archive drops old ABIs, so the current one is looked up each time.
# Exit status 2: cannot be prepared here for a reason outside the project
# (network, archive); the scenarios are then skipped.
set -euo pipefail
arch=${1:?usage: prepare.sh amd64|arm64}
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${HIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/callbox/hil}
log() { echo "prepare($arch): $*" >&2; }
die() { log "$*"; exit 1; }
# unavailable: what the rig needs cannot be had here (no network, no such
# package in this archive); exit 2 makes the scenarios SKIPPED, not FAIL.
unavailable() { log "$*"; exit 2; }

case $arch in
amd64)
	triplet=x86_64-linux-gnu
	any="" # apt's architecture suffix
	net_modules="virtio_pci virtio_net"
	# The screen scenario: QEMU's standard VGA through the bochs DRM
	# driver, whose fbdev emulation makes /dev/fb0.
	extra_modules="bochs"
	ld=lib64/ld-linux-x86-64.so.2
	libc_dir=/lib/x86_64-linux-gnu
	strip="strip"
	make_cross=()
	;;
arm64)
	triplet=aarch64-linux-gnu
	any=":arm64"
	net_modules="virtio_pci virtio_net"
	extra_modules=""
	ld=lib/ld-linux-aarch64.so.1
	libc_dir=/usr/aarch64-linux-gnu/lib # libc6-arm64-cross: what callboxd is linked against
	strip=aarch64-linux-gnu-strip
	make_cross=(DEB_BUILD_ARCH=amd64 DEB_HOST_ARCH=arm64 DEB_HOST_GNU_TYPE=aarch64-linux-gnu)
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		log "adding the arm64 architecture to dpkg (for apt-get download only)"
		dpkg --add-architecture arm64 || unavailable "dpkg --add-architecture arm64 failed (not root?)"
		apt-get update -q >&2 || unavailable "apt-get update failed"
	fi
	;;
*) die "unknown architecture $arch (want amd64 or arm64)" ;;
esac

# The kernel the meta package points at now: linux-image-<abi>-<arch>.
lookup() { apt-cache depends "linux-image-$arch$any" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
image=$(lookup)
if [ -z "$image" ]; then
	apt-get update -q >&2
	image=$(lookup)
fi
[ -n "$image" ] || unavailable "apt-cache knows no linux-image-$arch$any"
image=${image%:*}
kver=${image#linux-image-}        # 6.1.0-56-amd64
abi=${kver%-"$arch"}              # 6.1.0-56
version=$(apt-cache show "$image$any" | awk '/^Version:/{print $2; exit}')
series=$(echo "$abi" | cut -d. -f1,2) # 6.1
recipe=$(cat "$0" "$here"/init/* "$here"/kbuild/*/Kbuild | sha256sum | cut -c1-16)
dir=$cache_root/$abi
out=$dir/$arch
stamp="$version $recipe"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/kernel" ] && [ -f "$out/base.cpio" ]; then
	echo "$out"
	exit 0
fi
log "building for $kver ($version) in $out"
mkdir -p "$dir/debs"

# fetch downloads the packages named (apt syntax, e.g. pkg:arm64=1.2) into
# debs/ unless an earlier run did; one retry after apt-get update.
fetch() {
	local want=()
	for p in "$@"; do
		[ -f "$dir/debs/.got-$p" ] || want+=("$p")
	done
	[ ${#want[@]} -eq 0 ] && return
	log "downloading ${want[*]}"
	local tmp
	tmp=$(mktemp -d "$dir/debs/.dl-XXXXXX")
	# (apt warns that it downloads unsandboxed when _apt cannot write here.)
	if ! (cd "$tmp" && apt-get download -q "${want[@]}") >&2; then
		apt-get update -q >&2
		(cd "$tmp" && apt-get download -q "${want[@]}") >&2 || unavailable "apt-get download ${want[*]} failed"
	fi
	mv "$tmp"/*.deb "$dir/debs/"
	rmdir "$tmp"
	for p in "${want[@]}"; do : >"$dir/debs/.got-$p"; done
}

# The four source files gpio-sim needs, from the linux-source of the same
# version (the 140 MB package is deleted once they are out).
src=$dir/src
if [ ! -f "$src/.done" ]; then
	fetch "linux-source-$series=$version"
	rm -rf "$src" && mkdir -p "$src"
	deb=$(ls "$dir"/debs/linux-source-"${series}"_*.deb)
	log "extracting gpio-sim, irq_sim and extract-vmlinux from $(basename "$deb")"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$src" --wildcards './usr/src/linux-source-*.tar.xz'
	tar -xJf "$src"/usr/src/linux-source-*.tar.xz -C "$src" --strip-components=1 \
		"linux-source-$series/drivers/gpio/gpio-sim.c" "linux-source-$series/drivers/gpio/gpiolib.h" \
		"linux-source-$series/kernel/irq/irq_sim.c" "linux-source-$series/scripts/extract-vmlinux"
	rm -rf "${src:?}/usr" "$deb"
	touch "$src/.done"
fi

fetch "linux-image-$kver$any=$version" "linux-headers-$kver$any=$version" \
	"linux-headers-$abi-common=$version" "linux-kbuild-$series=$version" \
	v4l2loopback-dkms libasound2-data "busybox-static$any" "libasound2$any" "alsa-utils$any" "libspeexdsp1$any" "libopus0$any"

rm -rf "$out" && mkdir -p "$out"
tree=$out/tree
log "unpacking"
for p in "linux-image-$kver" "linux-headers-$kver" "linux-headers-$abi-common" "linux-kbuild-$series" \
	v4l2loopback-dkms libasound2-data busybox-static libasound2 alsa-utils libspeexdsp1 libopus0; do
	for d in "$dir"/debs/"${p}"_*.deb; do
		case $d in
		*/linux-kbuild-*_amd64.deb) dpkg -x "$d" "$tree" ;; # build tools: run on this machine
		*_"$arch".deb | *_all.deb) dpkg -x "$d" "$tree" ;;
		esac
	done
done
headers=$tree/usr/src/linux-headers-$kver
# The headers' Makefile includes the common part by its installed path.
sed -i "s|/usr/src/|$tree/usr/src/|" "$headers/Makefile"

# Modules built out of tree.
build=$out/build
mkdir -p "$build/gpio-sim" "$build/v4l2loopback"
cp "$here/kbuild/gpio-sim/Kbuild" "$src/drivers/gpio/gpiolib.h" "$build/gpio-sim/"
cp "$src/drivers/gpio/gpio-sim.c" "$build/gpio-sim/gpio-sim-core.c"
sed -e 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq_safe(irqnum);/' \
	-e '/^EXPORT_SYMBOL_GPL/d' "$src/kernel/irq/irq_sim.c" >"$build/gpio-sim/irq_sim.c"
grep -q 'generic_handle_irq_safe(irqnum)' "$build/gpio-sim/irq_sim.c" ||
	die "irq_sim.c of $version no longer calls handle_simple_irq(irq_to_desc(irqnum)): update the patch"
cp "$here/kbuild/v4l2loopback/Kbuild" "$tree"/usr/src/v4l2loopback-*/v4l2loopback.c \
	"$tree"/usr/src/v4l2loopback-*/v4l2loopback_formats.h "$build/v4l2loopback/"
for m in gpio-sim v4l2loopback; do
	log "building $m.ko"
	make -s -C "$headers" M="$build/$m" "${make_cross[@]}" modules >"$build/$m.log" 2>&1 ||
		{ cat "$build/$m.log" >&2; die "building $m failed"; }
done

# The kernel image.
if [ "$arch" = amd64 ]; then
	sh "$src/scripts/extract-vmlinux" "$tree/boot/vmlinuz-$kver" >"$out/kernel.tmp"
else
	if gzip -t "$tree/boot/vmlinuz-$kver" 2>/dev/null; then
		gzip -dc "$tree/boot/vmlinuz-$kver" >"$out/kernel.tmp"
	else
		cp "$tree/boot/vmlinuz-$kver" "$out/kernel.tmp"
	fi
fi

# The base root.
root=$out/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/share,lib/"$triplet",lib64,proc,sys,dev,tmp,run,etc,hil,var/lib,root}
cp "$tree/bin/busybox" "$root/bin/busybox"
cp "$here/init/init" "$root/init"
chmod 755 "$root/init"
echo "$net_modules" | tr ' ' '\n' >"$root/hil/base-modules"
echo "export LD_LIBRARY_PATH=/lib/$triplet" >"$root/hil/base-env"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\naudio:x:29:\nvideo:x:44:\n' >"$root/etc/group"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
# Kernel modules: the closure of what the scenarios load.
depmod -b "$tree" "$kver"
mdir=lib/modules/$kver
mkdir -p "$root/$mdir/extra"
for m in $net_modules configfs vivid snd-aloop videodev $extra_modules; do
	modprobe -d "$tree" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
	rel=${ko#"$tree/"}
	dst=$root/${rel%.xz}
	dst=${dst%.zst}
	mkdir -p "$(dirname "$dst")"
	case $ko in
	*.xz) xz -dc "$ko" >"$dst" ;;
	*.zst) zstd -qdc "$ko" >"$dst" ;;
	*) cp "$ko" "$dst" ;;
	esac
done
cp "$build/gpio-sim/gpio-sim.ko" "$build/v4l2loopback/v4l2loopback.ko" "$root/$mdir/extra/"
find "$root/$mdir" -name '*.ko' -exec "$strip" --strip-debug {} +
cp "$tree/$mdir"/modules.{order,builtin,builtin.modinfo} "$root/$mdir/"
depmod -b "$root" "$kver"
# glibc, libasound, libspeexdsp and libopus, found by following DT_NEEDED
# from aplay, libasound, libspeexdsp and libopus (callboxd needs libc, libm,
# libspeexdsp, which its echo canceller links, and libopus, its codec).
cp "$tree/usr/bin/aplay" "$root/usr/bin/aplay"
ln -s aplay "$root/usr/bin/arecord"
cp -r "$tree/usr/share/alsa" "$root/usr/share/alsa"
search=("$tree/usr/lib/$triplet" "$tree/lib/$triplet" "$libc_dir")
declare -A have=()
need() {
	local name=$1 f
	[ -n "${have[$name]:-}" ] && return
	for d in "${search[@]}"; do
		f=$d/$name
		if [ -e "$f" ]; then
			have[$name]=1
			cp -L "$f" "$root/lib/$triplet/$name"
			for n in $(readelf -d "$f" | awk '/NEEDED/{gsub(/[][]/, "", $5); print $5}'); do need "$n"; done
			return
		fi
	done
	die "library $name not found in ${search[*]}"
}
for n in libc.so.6 libm.so.6 libspeexdsp.so.1 libopus.so.0 $(readelf -d "$root/usr/bin/aplay" | awk '/NEEDED/{gsub(/[][]/, "", $5); print $5}'); do
	need "$n"
done
mkdir -p "$root/$(dirname "$ld")"
cp -L "$libc_dir/$(basename "$ld")" "$root/$ld"

log "writing base.cpio"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out/base.cpio.tmp"
mv "$out/kernel.tmp" "$out/kernel"
mv "$out/base.cpio.tmp" "$out/base.cpio"
printf 'kernel_release=%s\npackage_version=%s\narch=%s\n' "$kver" "$version" "$arch" >"$out/info"
rm -rf "$tree" # 200 MB of unpacked packages; the .debs stay in debs/
echo "$stamp" >"$out/stamp"
log "done: $(du -sh "$out/base.cpio" | cut -f1) base, kernel $(du -sh "$out/kernel" | cut -f1)"
echo "$out"
