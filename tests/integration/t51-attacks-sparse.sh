#!/bin/bash
# Attack: a guest's huge sparse file stalls unify for everyone (issue 10,
# finding 3).  Holes are hashed as zeros (SHA-256 has no shortcut): a
# 16 TiB sparse file took hours of CPU under the exclusive pool lock.
# Files over policy.conf's max-size (default 1 GiB) stay in the upper, and
# status says so.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd timeout truncate
need_bin "$VUNIFY"

mkfs_loop 256M tmpfs "$TEST_TMP/fs"
t=$TEST_TMP/fs
V=("$VUNIFY" -p "$t/pool")
assert_ok "${V[@]}" init || exit 1
grep -q '^max-size 1G$' "$t/pool/policy.conf" && _pass "init writes the max-size default" ||
	_fail "policy.conf has no 'max-size 1G': $(cat "$t/pool/policy.conf")"

mkdir -p "$t/h/upper/usr/lib" "$t/h/upper/var/lib"
truncate -s 16T "$t/h/upper/usr/lib/huge.img"          # system path: would be hashed
truncate -s 2G "$t/h/upper/var/lib/big.img"            # over the limit too
printf 'data\n' | dd of="$t/h/upper/usr/lib/huge.img" bs=1 seek=1M conv=notrunc status=none
truncate -s 64M "$t/h/upper/usr/lib/small-sparse.img" # under the limit: unified, stays sparse
printf 'tail\n' >>"$t/h/upper/usr/lib/small-sparse.img"
assert_ok "${V[@]}" add g "$t/h" || exit 1

# -- huge_sparse_file_stalls_unify: done in seconds, not hours
start=$(date +%s)
assert_ok timeout 60 "${V[@]}" unify
assert_eq yes "$([ $(($(date +%s) - start)) -lt 60 ] && echo yes || echo no)" "unify ends within a minute"
assert_eq yes "$([ -f "$t/h/upper/usr/lib/huge.img" ] && echo yes || echo no)" "the 16 TiB file stays in the upper"
assert_eq yes "$([ -f "$t/h/upper/var/lib/big.img" ] && echo yes || echo no)" "the 2 GiB file stays in the upper"
assert_eq no "$([ -f "$t/h/upper/usr/lib/small-sparse.img" ] && echo yes || echo no)" "a sparse file under max-size is unified"
obj=$(find "$t/pool/objects" -type f -size +60M | head -n 1)
assert_eq yes "$([ -n "$obj" ] && [ "$(stat -c %b "$obj")" -lt 1024 ] && echo yes || echo no)" "and its object stays sparse"

# -- status says what stays in the upper and why
assert_ok "${V[@]}" status
grep -q "2 files over max-size 1.0 GiB stay in the upper" "$LAST_STDOUT" && _pass "status names the files over max-size" ||
	_fail "status does not say it: $(cat "$LAST_STDOUT")"
assert_ok "${V[@]}" status --json
grep -q '"files_over_max_size": 2' "$LAST_STDOUT" && _pass "status --json counts them" ||
	_fail "no files_over_max_size 2 in: $(cat "$LAST_STDOUT")"

# the guest still sees its files, sizes and data
mkdir -p "$TEST_TMP/mnt"
assert_ok "${V[@]}" mount g "$TEST_TMP/mnt"
assert_eq 17592186044416 "$(stat -c %s "$TEST_TMP/mnt/usr/lib/huge.img")" "huge.img keeps its size"
assert_eq data "$(dd if="$TEST_TMP/mnt/usr/lib/huge.img" bs=1 skip=1M count=4 status=none)" "and its data"
assert_eq tail "$(tail -c 5 "$TEST_TMP/mnt/usr/lib/small-sparse.img" | head -c 4)" "small-sparse.img reads back"
assert_ok "${V[@]}" umount g

# max-size 0: no limit, nothing counted
echo "max-size 0" >>"$t/pool/policy.conf"
assert_ok "${V[@]}" status --json
grep -q '"files_over_max_size": 0' "$LAST_STDOUT" && _pass "max-size 0 sets no limit" ||
	_fail "files_over_max_size not 0 with max-size 0: $(cat "$LAST_STDOUT")"
