#!/bin/bash
# LXC starts a guest that vunify mounts, through the container's own
# config: lxc.rootfs.path is the mount point, a pre-start hook runs
# `vunify mount`, a post-stop hook `vunify umount` (the recipe of
# docs/OPERATIONS.md).  The container (a Debian bookworm-minbase guest, in
# an LXC path of the test's own, host network) runs a command that reads a
# file that only the guest has, unified into the pool, and the type of its
# root filesystem.  After it stops, nothing is mounted.  A container whose
# guest was removed from the pool does not start, and mounts nothing.
. "$(dirname "$0")/lib.sh"
export LC_ALL=C
need_root
need_cmd lxc-execute
need_bin "$VUNIFY"

"$TOP/scripts/debian-trees.sh" bookworm-minbase >"$TEST_TMP/trees.out" || fatal "debian-trees.sh failed"
tree=$(cat "$TEST_TMP/trees.out")

MKFS_EXT4_OPTS="-I 512" mkfs_loop 1G ext4 "$TEST_TMP/fs"
pool=$TEST_TMP/fs/pool
V=("$VUNIFY" -p "$pool")
assert_ok "${V[@]}" init || exit 1
assert_ok "${V[@]}" add ct1 "$TEST_TMP/fs/ct1" --from "$tree" || exit 1
marker="vunify guest ct1 $$"
printf '%s\n' "$marker" >"$TEST_TMP/fs/ct1/upper/etc/vunify-marker"
assert_ok "${V[@]}" unify -q || exit 1
[ -e "$TEST_TMP/fs/ct1/upper/etc/vunify-marker" ] && _fail "marker not unified" || _pass "marker unified into the pool"

# container NAME GUEST: an LXC container config (in $lxcpath/NAME) whose
# rootfs is the vunify mount of GUEST, mounted and unmounted by its hooks.
lxcpath=$TEST_TMP/lxc
container() {
	local name=$1 guest=$2 dir=$lxcpath/$1
	mkdir -p "$dir/rootfs"
	cat >"$dir/config" <<EOF
lxc.include = /usr/share/lxc/config/common.conf
lxc.uts.name = $name
lxc.rootfs.path = dir:$dir/rootfs
lxc.net.0.type = none
lxc.apparmor.profile = unconfined
lxc.hook.pre-start = /bin/sh -c 'exec $VUNIFY -p $pool mount $guest "\$LXC_ROOTFS_PATH"'
lxc.hook.post-stop = /bin/sh -c 'exec $VUNIFY -p $pool umount $guest'
EOF
}
container ct1 ct1
defer "${V[@]}" umount ct1

# shellcheck disable=SC2016 # expanded inside the container
assert_ok timeout 120 lxc-execute -n ct1 -P "$lxcpath" -o "$TEST_TMP/lxc.log" -- \
	/bin/sh -c 'cat /etc/vunify-marker; stat -f -c %T /; cat /etc/debian_version'
mapfile -t out <"$LAST_STDOUT"
assert_eq "$marker" "${out[0]:-}" "the container reads the guest's own unified file"
assert_eq overlayfs "${out[1]:-}" "the container's root is an overlay"
assert_eq "$(cat "$tree/etc/debian_version")" "${out[2]:-}" "the container sees the guest's Debian"
[ -s "$LAST_STDOUT" ] || echo "lxc log: $(grep -E 'ERROR' "$TEST_TMP/lxc.log" | head -n 5)"
assert_eq 0 "$(findmnt -rn --mountpoint "$lxcpath/ct1/rootfs" | wc -l)" "post-stop hook unmounted the guest"
assert_eq false "$("${V[@]}" status --json | jq -r '.guests[0].mounted')" "status: ct1 not mounted"

# A container for a guest that is not (any more) in the pool: no start,
# nothing mounted, vunify's one line in LXC's log.
container ct2 gone
assert_fail timeout 120 lxc-execute -n ct2 -P "$lxcpath" -l DEBUG -o "$TEST_TMP/lxc2.log" -- /bin/true
assert_eq 0 "$(findmnt -rn --mountpoint "$lxcpath/ct2/rootfs" | wc -l)" "nothing mounted for a removed guest"
grep -q "no such guest" "$TEST_TMP/lxc2.log" "$LAST_STDERR" && _pass "LXC reports vunify's error" ||
	_fail "vunify's error not reported: $(grep ERROR "$TEST_TMP/lxc2.log" | head -n 3)"
