#!/bin/bash
# Attack: a guest tree 20,000 directories deep (issue 10, finding 3).  The
# recursive walk took one C stack frame and one fd per level: add, unify and
# status died of a stack overflow (SIGSEGV) at 16,309 levels, and 20,000
# levels exceed RLIMIT_NOFILE (20,000 here).  Every command must either
# work or fail with "vunify: WHAT: WHY", never crash.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd perl
need_bin "$VUNIFY"

LEVELS=20000
mkfs_loop 512M tmpfs "$TEST_TMP/fs"
V=("$VUNIFY" -p "$TEST_TMP/fs/pool")
assert_ok "${V[@]}" init || exit 1

# mkdeep DIR: DIR/d/d/.../d/bottom ($LEVELS directories), "bottom" holds
# "deep file".  Paths are far past PATH_MAX, so perl walks with chdir.
mkdeep() {
	mkdir -p "$1" && (cd "$1" && perl -e '
		for (1..$ARGV[0]) { mkdir "d" or die "mkdir: $!"; chdir "d" or die "chdir: $!" }
		open(F, ">", "bottom") or die; print F "deep file\n"; close F' "$LEVELS")
}
# readdeep DIR: the content of DIR/d/.../d/bottom
readdeep() {
	(cd "$1" && perl -e '
		for (1..$ARGV[0]) { chdir "d" or die "chdir $_: $!" }
		open(F, "<", "bottom") or die "open: $!"; print <F>' "$LEVELS")
}

h=$TEST_TMP/fs/home
mkdir -p "$h/upper/etc"
echo "127.0.0.1 localhost" >"$h/upper/etc/hosts"
mkdeep "$h/upper/usr/deep" || fatal "cannot build the deep tree"
assert_ok "${V[@]}" add g1 "$h" || exit 1

# unify: the deep file is under /usr, so it is hashed, stored, and its
# stub placed 20,000 levels down in the lower layer
assert_ok "${V[@]}" unify
assert_ok "${V[@]}" status
assert_eq "2" "$("${V[@]}" status --json | sed -n 's/.*"files_unified": \([0-9]*\).*/\1/p')" \
	"both files unified, the deep one included"
assert_status 0 "${V[@]}" fsck

# the guest still reads the deep file through its merged view
mkdir -p "$TEST_TMP/mnt"
assert_ok "${V[@]}" mount g1 "$TEST_TMP/mnt"
assert_eq "deep file" "$(readdeep "$TEST_TMP/mnt/usr/deep" 2>&1)" "deep file read through the mount"
assert_ok "${V[@]}" umount g1

# a second unify of an unchanged deep guest is a no-op, still no crash
assert_ok "${V[@]}" unify

# add --from copies a deep tree (one destination fd per level before)
mkdeep "$TEST_TMP/fs/src2/usr/deep" || fatal "cannot build the second deep tree"
assert_ok "${V[@]}" add g2 "$TEST_TMP/fs/home2" --from "$TEST_TMP/fs/src2"
assert_eq "deep file" "$(readdeep "$TEST_TMP/fs/home2/upper/usr/deep" 2>&1)" "add --from copied the deep file"
assert_ok "${V[@]}" unify g2
assert_status 0 "${V[@]}" fsck

# remove copies the deep lower layer back into a plain upper
assert_ok "${V[@]}" remove g1
assert_eq "deep file" "$(readdeep "$h/upper/usr/deep" 2>&1)" "remove brought the deep file back into the upper"
assert_ok "${V[@]}" remove g2
assert_eq "deep file" "$(readdeep "$TEST_TMP/fs/home2/upper/usr/deep" 2>&1)" "and for the copied guest"
