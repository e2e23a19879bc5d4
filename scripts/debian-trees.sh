#!/bin/sh
# Build cached Debian root trees for tests, the demo and the benchmark.
#
#   scripts/debian-trees.sh NAME...      build (if not cached) and print paths
#   scripts/debian-trees.sh --list       print the known names
#
# Trees live in ${VUNIFY_TREE_CACHE:-/var/cache/vunify-test}/trees/NAME.
# Each is built into NAME.tmp and renamed into place only when debootstrap
# succeeded, so an interrupted run never leaves a half tree under NAME; a
# stale NAME.tmp is removed on the next run.  A lock per tree lets several
# runs ask for the same tree at once.  Downloaded .debs are kept in
# trees/.debs so rebuilding a tree costs no network.
#
# Mirrors: $VUNIFY_DEBIAN_MIRROR (default http://deb.debian.org/debian);
# when bullseye is gone from it, $VUNIFY_DEBIAN_ARCHIVE (default
# http://archive.debian.org/debian) is tried.
set -eu

cache=${VUNIFY_TREE_CACHE:-/var/cache/vunify-test}/trees
mirror=${VUNIFY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
archive=${VUNIFY_DEBIAN_ARCHIVE:-http://archive.debian.org/debian}
names="bookworm-minbase bookworm-web bullseye-minbase bookworm-base bookworm-dev"

die() {
	echo "debian-trees: $*" >&2
	exit 1
}

# tree_args NAME: print "SUITE ARGS..." for a known tree name.
tree_args() {
	case $1 in
	bookworm-minbase) echo "bookworm --variant=minbase" ;;
	bookworm-web) echo "bookworm --variant=minbase --include=nginx-light,python3" ;;
	bullseye-minbase) echo "bullseye --variant=minbase" ;;
	bookworm-base) echo "bookworm" ;;
	bookworm-dev) echo "bookworm --variant=minbase --include=build-essential" ;;
	*) return 1 ;;
	esac
}

# umount_below DIR: undo mounts debootstrap may have left (proc, sys) in
# an interrupted build, deepest first, before DIR is deleted.
umount_below() {
	findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1' | sort -r |
		while read -r m; do umount -l "$m" || true; done
}

build() {
	name=$1
	# shellcheck disable=SC2046 # word splitting of the argument list is meant
	set -- $(tree_args "$name")
	suite=$1
	shift
	dest=$cache/$name
	tmp=$cache/$name.tmp
	[ -d "$dest" ] && return 0
	umount_below "$tmp"
	rm -rf "$tmp"
	mkdir -p "$cache/.debs"
	start=$(date +%s)
	log=$cache/$name.log
	echo "debian-trees: building $name ($suite${1:+ $*}), log in $log" >&2
	if ! debootstrap --cache-dir="$cache/.debs" "$@" "$suite" "$tmp" "$mirror" >"$log" 2>&1; then
		umount_below "$tmp"
		rm -rf "$tmp"
		[ "$suite" = bullseye ] || die "debootstrap $name failed, see $log"
		echo "debian-trees: $suite failed on $mirror, trying $archive" >&2
		debootstrap --cache-dir="$cache/.debs" "$@" "$suite" "$tmp" "$archive" >>"$log" 2>&1 ||
			{
				umount_below "$tmp"
				rm -rf "$tmp"
				die "debootstrap $name failed, see $log"
			}
	fi
	umount_below "$tmp"
	# Drop what makes trees differ run to run without being guest data.
	rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/debootstrap"
	sync -f "$tmp" 2>/dev/null || sync
	mv -T "$tmp" "$dest"
	echo "debian-trees: $name built in $(($(date +%s) - start)) s" >&2
}

[ $# -gt 0 ] || die "usage: debian-trees.sh NAME... | --list"
if [ "$1" = --list ]; then
	echo "$names" | tr ' ' '\n'
	exit 0
fi
for n in "$@"; do
	tree_args "$n" >/dev/null || die "unknown tree '$n' (known: $names)"
done
[ "$(id -u)" = 0 ] || die "needs root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap not installed (scripts/deps.sh)"
mkdir -p "$cache"
for n in "$@"; do
	# One builder per tree; others wait and then find it cached.
	(
		flock 9
		build "$n"
	) 9>"$cache/.$n.lock"
	echo "$cache/$n"
done
