#!/bin/bash
# Attack: the link layout's metadata key was cut to 64 bits (issue 10,
# finding 8).  Files of equal content share one inode when their keys are
# equal, so metadata found to collide in 64 bits (owner, mode, set-id bits,
# xattrs) would make a guest's file show another guest's metadata.  Object
# names now carry the whole SHA-256 key (format 2); a format-1 pool keeps
# its 16-digit names and works on.
. "$(dirname "$0")/lib.sh"
need_root
need_bin "$VUNIFY" "$MANIFEST"

mkfs_loop 256M tmpfs "$TEST_TMP/fs"
t=$TEST_TMP/fs

# mkguest HOME: a few files, two with equal content and other metadata
mkguest() {
	mkdir -p "$1/upper/usr/bin" "$1/upper/etc"
	printf '#!/bin/sh\necho tool\n' >"$1/upper/usr/bin/tool"
	printf '#!/bin/sh\necho tool\n' >"$1/upper/usr/bin/tool-suid"
	chmod 4755 "$1/upper/usr/bin/tool-suid"
	printf 'conf\n' >"$1/upper/etc/x.conf"
	touch -d @1700000000 "$1/upper/usr/bin/tool" "$1/upper/usr/bin/tool-suid" "$1/upper/etc/x.conf"
}
# keylens POOL: the set of metadata-key lengths among the pool's objects
keylens() {
	find "$1/objects" -type f -name '*.*' -printf '%f\n' | awk -F. '{ print length($2) }' | sort -u | tr '\n' ' '
}

# -- full_metadata_key_in_new_pools
V=("$VUNIFY" -p "$t/pool2")
assert_ok "${V[@]}" init --layout link || exit 1
assert_eq "format 2" "$(grep '^format' "$t/pool2/vunify.conf")" "init writes format 2"
mkguest "$t/h2"
manifest "$t/h2/upper" "$TEST_TMP/h2.man" || exit 1
assert_ok "${V[@]}" add g2 "$t/h2"
assert_ok "${V[@]}" unify
assert_eq "64 " "$(keylens "$t/pool2")" "every link object name carries the whole 64-digit key"
assert_eq 3 "$(find "$t/pool2/objects" -type f | wc -l)" "equal content, other metadata: two objects"
assert_status 0 "${V[@]}" fsck
mkdir -p "$TEST_TMP/mnt2"
assert_ok "${V[@]}" mount g2 "$TEST_TMP/mnt2"
manifest "$TEST_TMP/mnt2" "$TEST_TMP/mnt2.man" --no-ino
grep -v ' dir ' "$TEST_TMP/h2.man" | sed 's/ link=[^ ]*//' >"$TEST_TMP/a"
grep -v ' dir ' "$TEST_TMP/mnt2.man" | sed 's/ link=[^ ]*//' >"$TEST_TMP/b"
assert_same_manifest "$TEST_TMP/a" "$TEST_TMP/b" "the guest sees its files as they were"
assert_ok "${V[@]}" umount g2

# -- format1_pool_keeps_16_digit_keys: read and written as before
V1=("$VUNIFY" -p "$t/pool1")
assert_ok "${V1[@]}" init --layout link || exit 1
sed -i 's/^format 2$/format 1/' "$t/pool1/vunify.conf"
mkguest "$t/h1"
assert_ok "${V1[@]}" add g1 "$t/h1"
assert_ok "${V1[@]}" unify
assert_eq "16 " "$(keylens "$t/pool1")" "a format-1 pool keeps 16-digit keys"
assert_eq "format 1" "$(grep '^format' "$t/pool1/vunify.conf")" "and stays format 1"
assert_status 0 "${V1[@]}" fsck
assert_ok "${V1[@]}" gc
assert_eq 3 "$(find "$t/pool1/objects" -type f | wc -l)" "gc keeps the format-1 objects"
# a second guest with the same files shares the old objects
mkguest "$t/h1b"
assert_ok "${V1[@]}" add g1b "$t/h1b"
assert_ok "${V1[@]}" unify g1b
assert_eq 3 "$(find "$t/pool1/objects" -type f | wc -l)" "a new guest joins the format-1 objects"
assert_status 0 "${V1[@]}" fsck
