#!/bin/bash
# Two commands on one pool at once: the second waits (and says so), nothing
# is corrupted; a lock left by a killed command blocks nobody.  Also
# add --move, on one filesystem and (refused) across two.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd debootstrap timeout flock
need_bin "$VUNIFY" "$MANIFEST"

"$TOP/scripts/debian-trees.sh" bookworm-minbase >"$TEST_TMP/trees.out" || fatal "debian-trees.sh failed"
tree=$(cat "$TEST_TMP/trees.out")
mkfs_loop 1G ext4 "$TEST_TMP/poolfs"
MKFS_EXT4_OPTS="-I 512" mkfs_loop 2G ext4 "$TEST_TMP/g.fs"
V=("$VUNIFY" -p "$TEST_TMP/poolfs/pool")
assert_ok "${V[@]}" init
manifest "$tree" "$TEST_TMP/src.man"

# add --move: the tree is renamed into the home when on one filesystem
cp -a "$tree" "$TEST_TMP/g.fs/tree1"
assert_ok "${V[@]}" add g1 "$TEST_TMP/g.fs/h1" --from "$TEST_TMP/g.fs/tree1" --move
assert_eq no "$([ -e "$TEST_TMP/g.fs/tree1" ] && echo yes || echo no)" "add --move moved the tree away"
manifest "$TEST_TMP/g.fs/h1/upper" "$TEST_TMP/g1.man"
assert_same_manifest "$TEST_TMP/src.man" "$TEST_TMP/g1.man" "add --move keeps the tree as it was"
# ... and is refused across filesystems, losing nothing
assert_fail_msg "not on the home's filesystem" "${V[@]}" add gx "$TEST_TMP/g.fs/hx" --from "$tree" --move
manifest "$tree" "$TEST_TMP/src2.man"
assert_same_manifest "$TEST_TMP/src.man" "$TEST_TMP/src2.man" "a refused --move leaves the tree alone"
assert_ok "${V[@]}" add g2 "$TEST_TMP/g.fs/h2" --from "$tree"

# Handshake instead of a guess how long to sleep: wait until PID holds
# the pool's lock exclusively (a non-blocking shared flock of the lock file
# fails), or fail if PID ends first.
holds_lock() {
	local pid=$1 i
	for ((i = 0; i < 3000; i++)); do
		flock -n -s "$TEST_TMP/poolfs/pool/lock" true 2>/dev/null || return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}

# Two writers at once: both succeed, one after the other.
"${V[@]}" unify g1 >"$TEST_TMP/u1.out" 2>"$TEST_TMP/u1.err" &
p1=$!
holds_lock "$p1" || fatal "the first unify never held the pool's lock"
"${V[@]}" unify g2 >"$TEST_TMP/u2.out" 2>"$TEST_TMP/u2.err" &
p2=$!
"${V[@]}" status >"$TEST_TMP/st.out" 2>"$TEST_TMP/st.err" &
p3=$!
wait "$p1"
assert_eq 0 $? "first unify succeeds"
wait "$p2"
assert_eq 0 $? "second unify succeeds"
wait "$p3"
assert_eq 0 $? "status during unify succeeds"
if grep -q "waiting for another vunify command" "$TEST_TMP/u2.err" "$TEST_TMP/st.err"; then
	_pass "a command that has to wait says so"
else
	_fail "no 'waiting' message (did the first unify end before the others started?)"
fi
assert_status 0 "${V[@]}" fsck
for g in g1 g2; do
	mkdir -p "$TEST_TMP/mnt/$g"
	assert_ok "${V[@]}" mount "$g" "$TEST_TMP/mnt/$g"
	manifest "$TEST_TMP/mnt/$g" "$TEST_TMP/$g.view.man"
	assert_same_manifest "$TEST_TMP/src.man" "$TEST_TMP/$g.view.man" "$g intact after concurrent unifies"
	assert_ok "${V[@]}" umount "$g"
done

# A lock held by a killed command blocks nobody.
mkdir -p "$TEST_TMP/g.fs/h2/upper/usr/share/lockdemo"
cp -a "$tree/usr/lib" "$TEST_TMP/g.fs/h2/upper/usr/share/lockdemo/"
"${V[@]}" unify g2 >/dev/null 2>&1 &
p=$!
# the handshake: kill it once it is seen holding the lock; its exit status
# then says whether the kill landed before it was done (a test that can
# tell it did not test)
holds_lock "$p" || fatal "the unify to kill never held the pool's lock"
kill -9 "$p" 2>/dev/null
wait "$p" 2>/dev/null
assert_eq 137 $? "unify killed (SIGKILL) while it held the pool's lock"
assert_ok timeout 30 "${V[@]}" status
assert_ok timeout 120 "${V[@]}" unify g2
assert_status 0 "${V[@]}" fsck
