# shellcheck shell=bash
# Body of t60/t61: failover between two hosts (SPEC "Failover", invariant
# 7), in the layout $LAYOUT.  Sourced by the tNN scripts after lib.sh.
#
# Host A is this shell, host B a real sshd in a mount namespace of its own
# (lib-twohost.sh); every transfer goes through ssh and rsync.  B's pool
# lives at a path with blanks, quotes and shell metacharacters, so every
# command that reaches B shows that no shell expands a target.  A guest's
# home is an ext4 image of its own, attached on A, then detached and
# attached on B (the DRBD switch).
#
# Checks: replica add/list/rm (an unreachable replica is refused by name),
# adopt refused while objects are missing (listed, nothing changed),
# replicate (then a second one sends nothing, in under a second), a byte
# flipped in an object on B (adopt --verify and fsck there catch it), a
# failover (adopt, mount, same view, dpkg --verify inside), a name clash
# and an unknown home format refused, the guest coming back to A, a disk
# full replica (refused by name, nothing torn named there), and send of a
# Debian guest with sparse files, hard links, xattrs, ACLs and devices.

# shellcheck source-path=SCRIPTDIR disable=SC1091
. "$(dirname "$0")/lib-twohost.sh"

# rsync can stall for ever after its receiver failed (the full replica
# below); vunify gives it this many idle seconds
export VUNIFY_RSYNC_TIMEOUT=5

need_root
need_cmd chroot jq setfacl setfattr mknod
need_bin "$VUNIFY" "$MANIFEST"
twohost_start # before anything is mounted: B's namespace is a copy of A's now

tree=$("$TOP/scripts/debian-trees.sh" bookworm-minbase) || fatal "debian-trees.sh failed"
mopt=()
[ "$LAYOUT" = link ] && mopt=(--no-ino)

mkfs_loop 1G ext4 "$TEST_TMP/a"
A_POOL=$TEST_TMP/a/pool
VA=("$VUNIFY" -p "$A_POOL")
# B's pool: its own filesystem, visible on B only, at a hostile path
truncate -s 1G "$TEST_TMP/b.img" && mkfs.ext4 -q "$TEST_TMP/b.img" || fatal "mkfs b.img"
attach_b "$TEST_TMP/b.img" "$TEST_TMP/b" || fatal "attach b.img on B"
B_POOL="$TEST_TMP/b/pool 'q\"\$(touch $TEST_TMP/INJECTED);\`touch $TEST_TMP/INJECTED2\`;x"
VB=("$VUNIFY" -p "$B_POOL")
assert_ok "${VA[@]}" init --layout "$LAYOUT" || exit 1
assert_ok on_b "${VB[@]}" init --layout "$LAYOUT" || exit 1
REPLICA="$B_HOST:$B_POOL"

# the guest's partition
G1_IMG=$TEST_TMP/g1.img
G1_FS=$TEST_TMP/g1fs
H1=$G1_FS/home
truncate -s 1G "$G1_IMG" && mkfs.ext4 -q -I 512 "$G1_IMG" || fatal "mkfs g1.img"
attach_a "$G1_IMG" "$G1_FS" || fatal "attach g1 on A"
mkdir -p "$TEST_TMP/mnt"

# view_a G OUT / view_b G OUT: the manifest of G's merged view on A / B
view_a() {
	assert_ok "${VA[@]}" mount "$1" "$TEST_TMP/mnt" || return 1
	manifest "$TEST_TMP/mnt" "$2" "${mopt[@]}"
	assert_ok "${VA[@]}" umount "$1"
}
view_b() {
	assert_ok on_b "${VB[@]}" mount "$1" "$TEST_TMP/mnt" || return 1
	on_b "$MANIFEST" "${mopt[@]}" "$TEST_TMP/mnt" >"$2" || _fail "manifest on B"
	if [ -n "${3:-}" ]; then
		assert_ok on_b chroot "$TEST_TMP/mnt" dpkg --verify
	fi
	assert_ok on_b "${VB[@]}" umount "$1"
}
a_to_b() { detach_a "$G1_FS" && attach_b "$G1_IMG" "$G1_FS" || fatal "fail over g1 to B"; }
b_to_a() { detach_b "$G1_FS" && attach_a "$G1_IMG" "$G1_FS" || fatal "fail g1 back to A"; }

echo "== replicas"
assert_fail_msg "replica add 'root@127.0.0.2:/nowhere': ssh failed" "${VA[@]}" replica add "root@127.0.0.2:/nowhere"
assert_fail_msg "expected \[user@\]host:DIR" "${VA[@]}" replica add "-oProxyCommand=touch $TEST_TMP/INJECTED3:/x"
assert_ok "${VA[@]}" replica add "$REPLICA"
assert_fail_msg "already a replica" "${VA[@]}" replica add "$REPLICA"
assert_ok "${VA[@]}" replica list
grep -qF "$REPLICA	synced never	lag 0 objects" "$LAST_STDOUT" || _fail "replica list: $(cat "$LAST_STDOUT")"

echo "== a guest, unified on A without its replica"
assert_ok "${VA[@]}" add g1 "$H1" --from "$tree" || exit 1
assert_ok "${VA[@]}" unify --no-replicas || exit 1
view_a g1 "$TEST_TMP/g1.a.man"
assert_ok "${VA[@]}" replica list
lag=$(sed -n 's/.*lag \([0-9]*\) objects/\1/p' "$LAST_STDOUT")
[ "${lag:-0}" -gt 1000 ] && _pass "lag $lag objects before replicate" || _fail "lag '$lag' before replicate"

echo "== failover before the objects are there: adopt refuses, nothing changes"
cp "$H1/vunify-guest" "$TEST_TMP/id.before"
a_to_b
assert_fail_msg "objects the guest needs are not in pool" on_b "${VB[@]}" adopt g1 "$H1"
grep -Eq "^  missing [0-9a-f]{64}" "$LAST_STDERR" || _fail "adopt does not list the missing objects"
on_b cat "$H1/vunify-guest" | cmp -s "$TEST_TMP/id.before" - && _pass "home id unchanged" || _fail "adopt changed the home id"
on_b "${VB[@]}" status --json | jq -e '.guests == []' >/dev/null && _pass "nothing registered on B" ||
	_fail "a refused adopt registered something"
b_to_a

echo "== replicate"
assert_ok "${VA[@]}" replicate || exit 1
grep -q "objects sent" "$LAST_STDOUT" && cat "$LAST_STDOUT"
t0=${EPOCHREALTIME//[!0-9]/}
assert_ok "${VA[@]}" replicate
ms=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
grep -q ": 0 objects sent" "$LAST_STDOUT" && _pass "second replicate sends nothing" || _fail "second replicate: $(cat "$LAST_STDOUT")"
# the time is one ssh round trip (asking B for its names) plus vunify's
# own work: the machine running the tests may be loaded, so the limit of 1 s
# is on what replicate adds to a bare `ssh true`
t0=${EPOCHREALTIME//[!0-9]/}
ssh -F "$TEST_TMP/ssh/ssh_config" 127.0.0.1 true
ssh_ms=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
[ $((ms - ssh_ms)) -lt 1000 ] && _pass "second replicate took $ms ms (a bare ssh: $ssh_ms ms)" ||
	_fail "second replicate took $ms ms, a bare ssh $ssh_ms ms (limit: 1000 ms more)"
assert_ok "${VA[@]}" replica list
grep -q "lag 0 objects" "$LAST_STDOUT" && grep -vq "synced never" "$LAST_STDOUT" && _pass "replica up to date" ||
	_fail "replica list after replicate: $(cat "$LAST_STDOUT")"
assert_ok on_b "${VB[@]}" fsck

echo "== gc on B keeps the objects it holds for A's guests (invariant 7 on the replica)"
assert_ok on_b "${VB[@]}" gc
assert_ok "${VA[@]}" replica list
grep -q "lag 0 objects" "$LAST_STDOUT" && _pass "B's gc deleted nothing A's guests need" ||
	_fail "after gc on B: $(cat "$LAST_STDOUT")"

echo "== a byte flipped in an object on B"
obj=$(on_b find "$B_POOL/objects" -type f -size +1k | head -1)
[ -n "$obj" ] || fatal "no object on B"
# (keeping its times: in the link layout the object inode is what guests see)
flip() {
	on_b python3 -c 'import os, sys
st = os.stat(sys.argv[1])
with open(sys.argv[1], "r+b") as f:
    f.seek(100); b = f.read(1); f.seek(100); f.write(bytes([b[0] ^ 1]))
os.utime(sys.argv[1], ns=(st.st_atime_ns, st.st_mtime_ns))' "$obj"
}
flip
assert_status 1 on_b "${VB[@]}" fsck
a_to_b
assert_fail_msg "corrupt" on_b "${VB[@]}" adopt --verify g1 "$H1"
grep -q "corrupt $(basename "$obj")" "$LAST_STDERR" && _pass "adopt --verify names the corrupt object" ||
	_fail "adopt --verify did not name $(basename "$obj")"
flip
assert_ok on_b "${VB[@]}" fsck

echo "== failover: adopt, mount, same view"
# (the home is attached on B only now: edit it there)
on_b cp "$H1/vunify-guest" "$TEST_TMP/id.orig"
on_b sh -c 'grep -v "^format " "$1" >"$2/vunify-guest" && echo "format 99" >>"$2/vunify-guest"' sh "$TEST_TMP/id.orig" "$H1"
assert_fail_msg "format this vunify does not know" on_b "${VB[@]}" adopt g1 "$H1"
on_b cp "$TEST_TMP/id.orig" "$H1/vunify-guest"
# over ssh, as an admin on B would: B runs vunify from its PATH
assert_ok ssh -F "$TEST_TMP/ssh/ssh_config" 127.0.0.1 vunify -p "$(printf '%q' "$B_POOL")" adopt --verify g1 "$H1"
view_b g1 "$TEST_TMP/g1.b.man" dpkg
assert_same_manifest "$TEST_TMP/g1.a.man" "$TEST_TMP/g1.b.man" "g1's view on B equals its view on A"
assert_fail_msg "already registered" on_b "${VB[@]}" adopt g1 "$H1"
assert_fail_msg "home is not attached" "${VA[@]}" unify g1

echo "== the guest comes back to A"
b_to_a
assert_ok "${VA[@]}" adopt g1 "$H1"
view_a g1 "$TEST_TMP/g1.back.man"
assert_same_manifest "$TEST_TMP/g1.a.man" "$TEST_TMP/g1.back.man" "g1's view back on A"

# new_files DIR COUNT KIB: files of new content in g1, through its mount
new_files() {
	local k
	assert_ok "${VA[@]}" mount g1 "$TEST_TMP/mnt" || return 1
	mkdir -p "$TEST_TMP/mnt/usr/local/lib/$1"
	for ((k = 0; k < $2; k++)); do
		head -c $(($3 * 1024)) /dev/urandom >"$TEST_TMP/mnt/usr/local/lib/$1/f$k"
	done
	manifest "$TEST_TMP/mnt" "$TEST_TMP/g1.a.man" "${mopt[@]}"
	assert_ok "${VA[@]}" umount g1
}
# in_upper DIR: how many of those files are still in g1's upper
in_upper() { find "$H1/upper/usr/local/lib/$1" -type f 2>/dev/null | wc -l; }

echo "== replicated unify with the replica unreachable: files stay, the next unify finishes"
new_files new1 20 16
# every ssh of this run is refused (nothing listens on port 9)
VUNIFY_SSH="$VUNIFY_SSH -p 9" assert_fail "${VA[@]}" unify g1
# (the 20 new files, and any other file of g1 the mount left to unify)
grep -qF "replica '$REPLICA': ssh failed (exit 255); " "$LAST_STDERR" &&
	grep -Eq "; (2[0-9]) files stay in the uppers" "$LAST_STDERR" &&
	_pass "unify names the unreachable replica and the files kept" || _fail "unify's message: $(cat "$LAST_STDERR")"
[ "$(in_upper new1)" = 20 ] && _pass "the 20 new files stay in the upper" || _fail "$(in_upper new1) of 20 new files in the upper"
view_a g1 "$TEST_TMP/g1.now.man"
assert_same_manifest "$TEST_TMP/g1.a.man" "$TEST_TMP/g1.now.man" "view unchanged after the refused replication"
assert_ok "${VA[@]}" unify g1
[ "$(in_upper new1)" = 0 ] && _pass "the next unify finishes" || _fail "$(in_upper new1) new files still in the upper"
assert_ok "${VA[@]}" replica list
grep -q "lag 0 objects" "$LAST_STDOUT" && _pass "replica holds them" || _fail "replica list: $(cat "$LAST_STDOUT")"

echo "== a replica that is full (a 8 MiB tmpfs on B)"
FULL="$B_HOST:$TEST_TMP/full/pool"
mkdir -p "$TEST_TMP/full"
on_b mount -t tmpfs -o size=8m tmpfs "$TEST_TMP/full" || fatal "tmpfs on B"
assert_ok on_b "$VUNIFY" -p "$TEST_TMP/full/pool" init --layout "$LAYOUT"
assert_fail_msg "replicate to '$FULL'" "${VA[@]}" replicate --to "$FULL"
assert_ok on_b "$VUNIFY" -p "$TEST_TMP/full/pool" fsck
on_b rm -rf "$TEST_TMP/full/pool/tmp/"* # make room again (what fsck there removes)
assert_ok "${VA[@]}" replica add "$FULL"
new_files new2 12 1024
assert_fail "${VA[@]}" unify g1
grep -qF "replica '$FULL': rsync failed" "$LAST_STDERR" && grep -q "files stay in the uppers" "$LAST_STDERR" &&
	_pass "unify names the full replica" || _fail "unify's message: $(cat "$LAST_STDERR")"
kept=$(in_upper new2)
[ "$kept" -gt 0 ] && _pass "$kept of 12 new files stay in the upper" || _fail "no new file stayed in the upper"
view_a g1 "$TEST_TMP/g1.now.man"
assert_same_manifest "$TEST_TMP/g1.a.man" "$TEST_TMP/g1.now.man" "view unchanged with a full replica"
assert_ok on_b "$VUNIFY" -p "$TEST_TMP/full/pool" fsck
assert_ok "${VA[@]}" replica rm "$FULL"
assert_ok "${VA[@]}" unify g1
[ "$(in_upper new2)" = 0 ] && _pass "without the full replica the next unify finishes" || _fail "$(in_upper new2) files still in the upper"

echo "== send a Debian guest with sparse files, hard links, xattrs, ACLs and devices"
mkdir -p "$TEST_TMP/a/extra"
cp -a "$tree/." "$TEST_TMP/a/extra/"
truncate -s 200M "$TEST_TMP/a/extra/var/sparse.img"
printf 'data' | dd of="$TEST_TMP/a/extra/var/sparse.img" bs=1 seek=100000000 conv=notrunc status=none
echo linked >"$TEST_TMP/a/extra/var/hl1" && ln "$TEST_TMP/a/extra/var/hl1" "$TEST_TMP/a/extra/var/hl2"
setfattr -n user.note -v hello "$TEST_TMP/a/extra/etc/hostname"
setfacl -m u:1234:r "$TEST_TMP/a/extra/etc/hosts"
mknod "$TEST_TMP/a/extra/dev/null2" c 1 3
assert_ok "${VA[@]}" add g2 "$TEST_TMP/a/g2" --from "$TEST_TMP/a/extra" || exit 1
assert_ok "${VA[@]}" unify g2
view_a g2 "$TEST_TMP/g2.a.man"
manifest "$TEST_TMP/a/g2" "$TEST_TMP/g2.home.before" --no-ino
assert_ok "${VA[@]}" send g2 "$B_HOST:$TEST_TMP/b/homes/g2" --pool "$B_POOL"
manifest "$TEST_TMP/a/g2" "$TEST_TMP/g2.home.after" --no-ino
assert_same_manifest "$TEST_TMP/g2.home.before" "$TEST_TMP/g2.home.after" "send leaves the source as it was"
view_b g2 "$TEST_TMP/g2.b.man" dpkg
assert_same_manifest "$TEST_TMP/g2.a.man" "$TEST_TMP/g2.b.man" "g2's view on B equals its view on A"
used=$(on_b du -k "$TEST_TMP/b/homes/g2/upper/var/sparse.img" | cut -f1)
[ "$used" -lt 1024 ] && _pass "sparse file stays sparse (${used} KiB)" || _fail "sparse file takes $used KiB on B"
assert_fail_msg "already registered" "${VA[@]}" send g2 "$B_HOST:$TEST_TMP/b/homes/g2b" --pool "$B_POOL"

echo "== no shell ever expanded the hostile target"
for f in INJECTED INJECTED2 INJECTED3; do
	[ -e "$TEST_TMP/$f" ] && _fail "$f exists: a target was run through a shell" || _pass "no $f"
done
assert_ok "${VA[@]}" replica rm "$REPLICA"
assert_fail_msg "not a replica" "${VA[@]}" replica rm "$REPLICA"
