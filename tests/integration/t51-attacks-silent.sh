#!/bin/bash
# Attack: failures that exit 1 without a word, or go on as if nothing
# failed (issue 10, finding 10).  status, mount and remove treated "cannot
# read the mount table" as "not mounted": remove unregistered a guest it
# could not prove unmounted, mount stacked a second mount, status printed
# "-".  Every failure must print "vunify: WHAT: WHY" and exit non-zero.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd unshare
need_bin "$VUNIFY"

mkfs_loop 128M tmpfs "$TEST_TMP/fs"
P=$TEST_TMP/fs/pool
V=("$VUNIFY" -p "$P")
assert_ok "${V[@]}" init || exit 1
mkdir -p "$TEST_TMP/fs/h1/upper/etc" "$TEST_TMP/mnt"
echo "x" >"$TEST_TMP/fs/h1/upper/etc/x"
assert_ok "${V[@]}" add g1 "$TEST_TMP/fs/h1" || exit 1
assert_ok "${V[@]}" unify || exit 1

# A vunify that cannot read any mount table: /proc hidden under a tmpfs in
# a mount namespace of its own.
noproc() {
	unshare -m --propagation private sh -c 'mount -t tmpfs none /proc && exec "$@"' sh "$@"
}
msg="^vunify: .*cannot tell whether it is mounted: "

# -- remove_when_mount_table_unreadable: refused, guest kept
assert_fail_msg "$msg" noproc "${V[@]}" remove g1
assert_ok "${V[@]}" status --json g1
assert_eq 1 "$(grep -c '"name": "g1"' "$LAST_STDOUT")" "g1 still registered after the refused remove"
# -- mount_when_mount_table_unreadable: refused, nothing mounted
assert_fail_msg "$msg" noproc "${V[@]}" mount g1 "$TEST_TMP/mnt"
assert_eq no "$(mountpoint -q "$TEST_TMP/mnt" && echo yes || echo no)" "nothing mounted by the refused mount"
# -- status_when_mount_table_unreadable: no "-" for "unknown"
assert_fail_msg "$msg" noproc "${V[@]}" status

# -- every other failure says what and why (stderr's first line)
# check_says CMD...: exits 1 or 2 and the first stderr line is
# "vunify: WHAT: WHY" (at least two ": " separated parts after "vunify")
check_says() {
	local rc=0
	"$@" >"$LAST_STDOUT" 2>"$LAST_STDERR" || rc=$?
	if [ "$rc" = 0 ] || [ "$rc" -ge 128 ]; then
		_fail "$*: expected a failure with a message, got exit $rc"
		return 1
	fi
	if head -n 1 "$LAST_STDERR" | grep -Eq '^vunify: [^:]+.*: .+'; then
		_pass "says what and why: $*"
	else
		_fail "$*: exit $rc, first stderr line is '$(head -n 1 "$LAST_STDERR")'"
	fi
}
check_says "${V[@]}" status nosuch
check_says "${V[@]}" mount nosuch "$TEST_TMP/mnt"
check_says "${V[@]}" mount g1 "$TEST_TMP/no/such/target"
check_says "${V[@]}" umount g1
check_says "${V[@]}" remove nosuch
check_says "${V[@]}" unify nosuch
check_says "${V[@]}" unify --skip-mounted nosuch # crashed: error taken for success
check_says "${V[@]}" export nosuch "$TEST_TMP/exp"
check_says "${V[@]}" add "bad/name" "$TEST_TMP/fs/hx"
check_says "$VUNIFY" -p "$TEST_TMP/nopool" status
check_says "$VUNIFY" -p "$TEST_TMP/nopool" gc
check_says "$VUNIFY" -p "$TEST_TMP/nopool" fsck
check_says "${V[@]}" status --bogus

# -- status_with_unreadable_upper: figures it cannot take are an error, not
# silently the old ones (an upper that is a file, not a directory)
mkdir -p "$TEST_TMP/fs/h2/upper"
assert_ok "${V[@]}" add g2 "$TEST_TMP/fs/h2"
rmdir "$TEST_TMP/fs/h2/upper"
: >"$TEST_TMP/fs/h2/upper"
check_says "${V[@]}" status
grep -q "^g1 " "$LAST_STDOUT" && _pass "status still shows the other guests" ||
	_fail "status showed nothing: $(cat "$LAST_STDOUT")"
