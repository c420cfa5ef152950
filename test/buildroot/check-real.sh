#!/usr/bin/env bash
# Checks buildroot/ (the BR2_EXTERNAL tree) against a real buildroot: loads
# every configs/*_defconfig with the tree, checks that Kconfig kept every
# setting, that the defconfigs are in savedefconfig form, that the files and
# symbols they name exist in buildroot, and what buildroot makes of the
# callbox package (make printvars). It builds nothing but buildroot's kconfig.
#
#   test/buildroot/check-real.sh            check
#   test/buildroot/check-real.sh --record   check, then rewrite testdata/buildroot.txt
#
# Needs git, make, gcc, and network once: buildroot is cloned into
# ${XDG_CACHE_HOME:-~/.cache}/callbox/buildroot-$BR_TAG and reused.
# Environment: BR_TAG (the release, default below), BR_URL (git URL(s) or a
# local clone to clone from), BUILDROOT_SRC (use this checkout instead).
set -euo pipefail

BR_TAG=${BR_TAG:-2026.02.3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
ext=$repo/buildroot
cache=${XDG_CACHE_HOME:-$HOME/.cache}/callbox
src=${BUILDROOT_SRC:-$cache/buildroot-$BR_TAG}
urls=${BR_URL:-https://gitlab.com/buildroot.org/buildroot.git https://github.com/buildroot/buildroot.git}
record=0
[ "${1:-}" = --record ] && record=1

# Called from make: do not hand our make's flags and jobserver to buildroot's.
unset MAKEFLAGS MFLAGS MAKELEVEL

fail() {
	echo "check-real: $*" >&2
	exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The buildroot checkout, cloned once.
if [ ! -e "$src/Makefile" ]; then
	mkdir -p "$(dirname "$src")"
	for u in $urls; do
		[ -d "$u" ] && u=file://$(cd "$u" && pwd)
		echo "check-real: cloning buildroot $BR_TAG from $u"
		rm -rf "$work/br"
		if git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$BR_TAG" "$u" "$work/br"; then
			mv "$work/br" "$src"
			break
		fi
	done
	[ -e "$src/Makefile" ] || fail "could not clone buildroot $BR_TAG from: $urls"
fi
got=$(git -C "$src" describe --tags --exact-match 2>/dev/null || true)
[ "$got" = "$BR_TAG" ] || fail "$src is at '${got:-no tag}', not buildroot $BR_TAG"
echo "check-real: buildroot $BR_TAG in $src"

# What the repository says.
module=$(awk '$1 == "module" { print $2; exit }' "$repo/go.mod")
gover=$(awk '$1 == "go" { print $2; exit }' "$repo/go.mod")
repo_version() {
	if grep -q '^version:' "$repo/Makefile"; then
		make -s --no-print-directory -C "$repo" version
	else
		git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo dev
	fi
}

# Every BR2_ symbol our tree names, minus those it defines itself and the
# BR2_EXTERNAL_<NAME>_PATH variables: all must be buildroot's.
grep -rhoE '^[[:space:]]*(menu)?config[[:space:]]+BR2_[A-Za-z0-9_]+' \
	--include='Config.in*' "$src" | awk '{ print $2 }' | sort -u >"$work/br-symbols"
grep -rhoE '^[[:space:]]*(menu)?config[[:space:]]+BR2_[A-Za-z0-9_]+' \
	--include='Config.in*' "$ext" | awk '{ print $2 }' | sort -u >"$work/our-symbols"
cat "$ext"/Config.in "$ext"/package/*/Config.in "$ext"/package/*/*.mk "$ext"/configs/*_defconfig |
	grep -oE 'BR2_[A-Za-z0-9_]+' | grep -vE '^BR2_EXTERNAL(_|$)' | sort -u |
	comm -23 - "$work/our-symbols" >"$work/used"
missing=$(comm -23 "$work/used" "$work/br-symbols")
[ -z "$missing" ] || fail "not defined by buildroot $BR_TAG: $missing"

# Files in buildroot that the defconfigs name: values of path-valued
# symbols (names ending in _DIR _SCRIPT _FILE _FILES _OVERLAY _TABLE
# _TABLES) that are relative, i.e. inside buildroot.
grep -hE '^BR2_[A-Z0-9_]+(_DIR|_SCRIPT|_FILE|_FILES|_OVERLAY|_TABLE|_TABLES)="' "$ext"/configs/*_defconfig |
	sed -E 's/^[^=]*="(.*)"$/\1/' | tr ' ' '\n' | grep -vE '^$|^/|^\$' | sort -u >"$work/files"
while read -r f; do
	[ -e "$src/$f" ] || fail "the defconfigs name $f, which buildroot $BR_TAG does not have"
done <"$work/files"

for def in "$ext"/configs/*_defconfig; do
	name=$(basename "$def")
	o=$work/$name
	log=$work/$name.log
	make -C "$src" BR2_EXTERNAL="$ext" O="$o" "$name" >"$log" 2>&1 ||
		{ cat "$log"; fail "$name: make $name failed"; }
	cfg=$o/.config

	# Kconfig drops a setting whose dependencies are not met, silently.
	while IFS= read -r line; do
		case $line in
		'# BR2_'*' is not set')
			sym=${line#\# }
			sym=${sym%% *}
			if grep -q "^$sym=" "$cfg"; then
				fail "$name: $sym should be unset, .config has $(grep "^$sym=" "$cfg")"
			fi
			;;
		BR2_*)
			grep -qxF -- "$line" "$cfg" ||
				fail "$name: '$line' did not survive Kconfig (unmet dependency?); .config has: $(grep "^${line%%=*}=" "$cfg" || echo "# ${line%%=*} is not set")"
			;;
		esac
	done <"$def"
	for want in BR2_PACKAGE_CALLBOX=y BR2_PACKAGE_ALSA_LIB=y BR2_PACKAGE_SPEEXDSP=y BR2_PACKAGE_OPUS=y BR2_INIT_SYSTEMD=y \
		BR2_PACKAGE_SYSTEMD=y BR2_PACKAGE_SYSTEMD_NETWORKD=y BR2_PACKAGE_HAS_UDEV=y \
		BR2_PACKAGE_HOST_GO_TARGET_CGO_LINKING_SUPPORTS=y BR2_PACKAGE_LIBSECCOMP=y; do
		grep -qxF "$want" "$cfg" || fail "$name: .config lacks $want"
	done

	# The defconfig is what `make savedefconfig` writes (plus our comments).
	make -C "$src" O="$o" savedefconfig BR2_DEFCONFIG="$o/saved_defconfig" >>"$log" 2>&1 ||
		{ cat "$log"; fail "$name: savedefconfig failed"; }
	if ! diff -u <(grep -E '^(BR2_|# BR2_)' "$def") "$o/saved_defconfig" >"$work/diff"; then
		cat "$work/diff"
		fail "$name is not in savedefconfig form: see the diff above (- ours, + buildroot's)"
	fi

	# What buildroot makes of the package.
	make -s -C "$src" O="$o" printvars \
		VARS='CALLBOX_SITE CALLBOX_SITE_METHOD CALLBOX_GOMOD CALLBOX_VERSION CALLBOX_INSTALL_BINS CALLBOX_LDFLAGS GO_VERSION' \
		>"$o/vars" 2>>"$log" || { cat "$log"; fail "$name: printvars failed"; }
	var() { sed -n "s/^$1=//p" "$o/vars"; }
	[ "$(var CALLBOX_SITE)" = "$repo" ] || fail "$name: CALLBOX_SITE is '$(var CALLBOX_SITE)', want $repo"
	[ "$(var CALLBOX_SITE_METHOD)" = local ] || fail "$name: CALLBOX_SITE_METHOD is '$(var CALLBOX_SITE_METHOD)'"
	[ "$(var CALLBOX_GOMOD)" = "$module" ] || fail "$name: CALLBOX_GOMOD is '$(var CALLBOX_GOMOD)', go.mod says $module"
	[ "$(var CALLBOX_INSTALL_BINS)" = "callboxd callbox" ] || fail "$name: installs '$(var CALLBOX_INSTALL_BINS)'"
	v=$(var CALLBOX_VERSION)
	rv=$(repo_version)
	# Others may edit the tree meanwhile: compare without -dirty.
	[ "${v%-dirty}" = "${rv%-dirty}" ] || fail "$name: CALLBOX_VERSION is '$v', the repository's version is '$rv'"
	case " $(var CALLBOX_LDFLAGS) " in
	*" -X main.version=$v "*) ;;
	*) fail "$name: CALLBOX_LDFLAGS '$(var CALLBOX_LDFLAGS)' do not stamp the version" ;;
	esac
	brgo=$(var GO_VERSION)
	[ "$(printf '%s\n%s\n' "$gover" "$brgo" | sort -V | head -1)" = "$gover" ] ||
		fail "buildroot $BR_TAG has Go $brgo, go.mod needs go $gover"
	echo "check-real: $name ok (callbox $v, Go $brgo)"
done

# buildroot's own linter, when a python3 with its modules is there.
py=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import magic, flake8' 2>/dev/null; then
		py=$p
		break
	fi
done
if [ -n "$py" ]; then
	(cd "$ext" && "$py" "$src/utils/check-package" --br2-external \
		Config.in external.mk external.desc package/*/* configs/*) ||
		fail "utils/check-package found problems"
	echo "check-real: utils/check-package ok"
else
	echo "check-real: skipped utils/check-package (needs python3-magic and flake8)"
fi

if [ "$record" = 1 ]; then
	out=$here/testdata/buildroot.txt
	mkdir -p "$here/testdata"
	{
		echo "# What test/buildroot's Go test knows about buildroot, recorded from"
		echo "# a checkout by test/buildroot/check-real.sh --record. Do not edit."
		echo "release $BR_TAG"
		echo "go $brgo"
		sed 's/^/symbol /' "$work/used"
		sed 's/^/file /' "$work/files"
	} >"$out"
	echo "check-real: wrote $out"
fi
echo "check-real: ok"
