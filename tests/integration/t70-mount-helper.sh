#!/bin/bash
# Mounts at boot: mount.vunify through mount(8) itself, an fstab line (via
# util-linux's alternative fstab, mount -T), and the systemd units.
#
# mount(8) looks for its helper only in /sbin (here /usr/sbin): the test
# runs in a mount namespace of its own where a read-only overlay puts a
# mount.vunify link (to the vunify under test) over /usr/sbin, so the host
# is not touched and every mount of the test dies with the namespace.
#
# 1. `mount -t vunify GUEST DIR -o pool=POOL` mounts the guest's view (the
#    tree it was added from); VUNIFY_POOL stands in for pool=; ro, nosuid,
#    nodev are applied; fstab's noauto, nofail, x-* are ignored; -f mounts
#    nothing.
# 2. An fstab line: mount -T FSTAB DIR.
# 3. Bad input (guest that does not exist, no pool option and no default
#    pool, target not a directory, unknown option, guest already mounted):
#    each a one-line error, and neither the pool, the homes nor the mount
#    table changed.
# 4. The units pass `systemd-analyze verify` (and a broken copy does not);
#    vunify-mount@'s ExecStart/ExecStop mount and unmount a guest and fail
#    with one line for a guest removed since; vunify-unify.service
#    (unify --online) re-unifies the unmounted guests and prepares the
#    mounted one's switch, which its next vunify-mount@ start carries out.
if [ "$(id -u)" = 0 ] && [ -z "${VUNIFY_T70_NS:-}" ]; then
	VUNIFY_T70_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
export LC_ALL=C
need_root
need_cmd mount findmnt unshare systemd-analyze
need_bin "$VUNIFY" "$MANIFEST"

mkfs_loop 256M tmpfs "$TEST_TMP/data"
pool=$TEST_TMP/data/pool
V=("$VUNIFY" -p "$pool")

# The helper, where mount(8) finds it (in this namespace only).
mkdir -p "$TEST_TMP/sbin"
ln -s "$VUNIFY" "$TEST_TMP/sbin/mount.vunify"
mount -t overlay -o "lowerdir=$TEST_TMP/sbin:/usr/sbin" t70-sbin /usr/sbin || fatal "overlay over /usr/sbin"
[ "$(readlink /sbin/mount.vunify)" = "$VUNIFY" ] || fatal "/sbin/mount.vunify is not the vunify under test"

# Two guests: g1 with a tree of its own, g2 sharing most of it.
src=$TEST_TMP/src
mkdir -p "$src/etc" "$src/usr/bin" "$src/var/lib/app" "$src/tmp"
printf 'g1\n' >"$src/etc/hostname"
head -c 100000 /dev/urandom >"$src/usr/bin/tool"
chmod 755 "$src/usr/bin/tool"
printf 'data\n' >"$src/var/lib/app/db"
ln -s ../usr/bin/tool "$src/etc/tool-link"
cp -a "$src" "$TEST_TMP/src2"
printf 'g2\n' >"$TEST_TMP/src2/etc/hostname"
assert_ok "${V[@]}" init || exit 1
assert_ok "${V[@]}" add g1 "$TEST_TMP/data/g1" --from "$src" || exit 1
assert_ok "${V[@]}" add g2 "$TEST_TMP/data/g2" --from "$TEST_TMP/src2" || exit 1
assert_ok "${V[@]}" unify -q || exit 1
manifest "$src" "$TEST_TMP/src.manifest" || exit 1
mkdir -p "$TEST_TMP/m1" "$TEST_TMP/m2"

# mounted_type DIR: "SOURCE FSTYPE" of the mount at DIR, or nothing.
mounted_type() { findmnt -n -o SOURCE,FSTYPE --mountpoint "$1" 2>/dev/null; }
mounted_opts() { findmnt -n -o VFS-OPTIONS --mountpoint "$1" 2>/dev/null; }

# ---- 1. mount -t vunify ---------------------------------------------------------

assert_ok mount -t vunify g1 "$TEST_TMP/m1" -o "pool=$pool"
assert_eq "vunify overlay" "$(mounted_type "$TEST_TMP/m1")" "mount -t vunify mounts g1's overlay"
manifest "$TEST_TMP/m1" "$TEST_TMP/m1.manifest" && assert_same_manifest "$TEST_TMP/src.manifest" "$TEST_TMP/m1.manifest" "g1 mounted by mount(8) shows the tree it was added from"
assert_eq true "$("${V[@]}" status --json | jq -r '.guests[] | select(.name == "g1") | .mounted')" "status: g1 mounted"
assert_ok umount "$TEST_TMP/m1"

# pool from the environment; mount(2) flags applied; fstab-only options ignored.
assert_ok env VUNIFY_POOL="$pool" mount -t vunify g1 "$TEST_TMP/m1" -o ro,nosuid,nodev,noauto,nofail,x-systemd.after=foo
assert_eq "vunify overlay" "$(mounted_type "$TEST_TMP/m1")" "VUNIFY_POOL stands in for pool="
o=$(mounted_opts "$TEST_TMP/m1")
case ",$o," in
*,ro,*nosuid,*nodev,*) _pass "ro,nosuid,nodev applied ($o)" ;;
*) _fail "ro,nosuid,nodev not applied: $o" ;;
esac
assert_fail_msg 'Read-only file system' touch "$TEST_TMP/m1/etc/new"
assert_ok umount "$TEST_TMP/m1"

# -f (fake): everything checked, nothing mounted.
assert_ok mount -f -t vunify g1 "$TEST_TMP/m1" -o "pool=$pool"
assert_eq "" "$(mounted_type "$TEST_TMP/m1")" "mount -f mounts nothing"

# ---- 2. fstab ---------------------------------------------------------------------

cat >"$TEST_TMP/fstab" <<EOF
# vunify guests
g1  $TEST_TMP/m1  vunify  pool=$pool,nosuid,nofail  0 0
g2  $TEST_TMP/m2  vunify  pool=$pool,noauto         0 0
EOF
assert_ok mount -T "$TEST_TMP/fstab" "$TEST_TMP/m1"
assert_ok mount -T "$TEST_TMP/fstab" "$TEST_TMP/m2"
assert_eq "vunify overlay" "$(mounted_type "$TEST_TMP/m1")" "fstab line mounts g1"
assert_eq "vunify overlay" "$(mounted_type "$TEST_TMP/m2")" "fstab line mounts g2"
assert_eq g2 "$(cat "$TEST_TMP/m2/etc/hostname")" "g2's own view through fstab"
case ",$(mounted_opts "$TEST_TMP/m1")," in
*,nosuid,*) _pass "fstab's nosuid applied" ;;
*) _fail "fstab's nosuid not applied: $(mounted_opts "$TEST_TMP/m1")" ;;
esac
assert_ok umount "$TEST_TMP/m1"
assert_ok "${V[@]}" umount g2

# ---- 3. bad input: one line, nothing changed ---------------------------------------------

# snapshot: the mount table below TEST_TMP and the whole pool and homes.
snapshot() {
	{
		findmnt -rn -o TARGET,SOURCE,FSTYPE | grep -F "$TEST_TMP" | grep -v "^$TEST_TMP/data "
		"$MANIFEST" "$TEST_TMP/data"
	} >"$1"
}
# refused REGEX CMD...: fails with exactly one line on stderr matching REGEX.
refused() {
	local re=$1
	shift
	assert_fail_msg "$re" "$@" || return
	assert_eq 1 "$(wc -l <"$LAST_STDERR")" "one line: $(head -n 1 "$LAST_STDERR")"
}

assert_ok mount -t vunify g1 "$TEST_TMP/m1" -o "pool=$pool" # for "already mounted"
snapshot "$TEST_TMP/before"
printf 'x\n' >"$TEST_TMP/afile"
refused "mount 'nope': .*no such guest" mount -t vunify nope "$TEST_TMP/m2" -o "pool=$pool"
refused "mount '\.\./g1': .*no such guest" mount -t vunify ../g1 "$TEST_TMP/m2" -o "pool=$pool"
if [ -e /var/lib/vunify ]; then
	echo "note: /var/lib/vunify exists on this host: the no-default-pool case cannot be tried"
else
	refused "no pool= option and no pool at '/var/lib/vunify'" env -u VUNIFY_POOL mount -t vunify g2 "$TEST_TMP/m2"
fi
refused "open pool '$TEST_TMP/nopool'" mount -t vunify g2 "$TEST_TMP/m2" -o "pool=$TEST_TMP/nopool"
refused "target '$TEST_TMP/afile': Not a directory" mount -t vunify g2 "$TEST_TMP/afile" -o "pool=$pool"
refused "unknown option 'bogus'" mount -t vunify g2 "$TEST_TMP/m2" -o "pool=$pool,bogus"
refused "option 'pool=' needs a directory" mount -t vunify g2 "$TEST_TMP/m2" -o "pool="
refused "mount 'g1': already mounted at '$TEST_TMP/m1'" mount -t vunify g1 "$TEST_TMP/m2" -o "pool=$pool"
snapshot "$TEST_TMP/after"
assert_same_manifest "$TEST_TMP/before" "$TEST_TMP/after" "refused mounts changed nothing (mounts, pool, homes)"
assert_eq x "$(cat "$TEST_TMP/afile")" "the file given as target is untouched"
# -s (sloppy) lets an unknown option through, as mount(8) documents.
assert_ok mount -s -t vunify g2 "$TEST_TMP/m2" -o "pool=$pool,bogus"
assert_ok umount "$TEST_TMP/m1"
assert_ok umount "$TEST_TMP/m2"

# ---- 4. units ----------------------------------------------------------------------------

units=(vunify-mount@.service vunify-unify.service vunify-unify.timer)
root=$TEST_TMP/root # systemd-analyze --root: unit search path and /usr/sbin/vunify
mkdir -p "$root/usr/sbin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$VUNIFY" "$root/usr/sbin/vunify"
for u in "${units[@]}"; do
	cp "$TOP/systemd/$u" "$root/etc/systemd/system/" || fatal "no systemd/$u"
done
verify() { systemd-analyze verify --man=no --root="$root" vunify-mount@g1.service vunify-unify.service vunify-unify.timer; }
assert_ok verify
assert_eq "" "$(cat "$LAST_STDERR" "$LAST_STDOUT")" "systemd-analyze verify: no warnings"
# The oracle catches a bad unit: an unknown key, and a missing binary.
sed -i 's/^\[Service\]/[Service]\nExecStartt=x/' "$root/etc/systemd/system/vunify-unify.service"
verify >"$TEST_TMP/bad.out" 2>&1
grep -q "Unknown key 'ExecStartt'" "$TEST_TMP/bad.out" && _pass "verify reports a bad key" || _fail "verify missed a bad key: $(cat "$TEST_TMP/bad.out")"
cp "$TOP/systemd/vunify-unify.service" "$root/etc/systemd/system/"
rm "$root/usr/sbin/vunify"
assert_fail verify

# unit_cmd UNIT KEY GUEST: the unit's KEY= command line for instance GUEST,
# the vunify under test in place of /usr/sbin/vunify.
unit_cmd() {
	sed -n "s/^$2=//p" "$TOP/systemd/$1" | sed -e "s/%i/$3/g" -e "s|/usr/sbin/vunify|$VUNIFY|"
}
# run_unit UNIT KEY GUEST: run it as systemd would, with the unit's
# Environment= and an EnvironmentFile giving the pool and the mount dir.
run_unit() {
	local env
	env=$(sed -n 's/^Environment=//p' "$TOP/systemd/$1")
	printf 'VUNIFY_POOL=%s\nVUNIFY_MOUNT_DIR=%s\n' "$pool" "$TEST_TMP/machines" >"$TEST_TMP/default"
	grep -q '^EnvironmentFile=-/etc/default/vunify$' "$TOP/systemd/$1" || _fail "$1 reads no /etc/default/vunify"
	# shellcheck disable=SC2046,SC2086 # Environment= is a list of assignments
	env $env $(cat "$TEST_TMP/default") bash -c "$(unit_cmd "$1" "$2" "$3")"
}
mkdir -p "$TEST_TMP/machines/g1" "$TEST_TMP/machines/g2"
assert_ok run_unit vunify-mount@.service ExecStart g1
assert_eq "vunify overlay" "$(mounted_type "$TEST_TMP/machines/g1")" "vunify-mount@g1 mounts g1 at VUNIFY_MOUNT_DIR/g1"
assert_ok run_unit vunify-mount@.service ExecStart g2

# nightly unify --online: g1 mounted is prepared (switch at its next mount),
# g2 (unmounted after a change) re-unified now.
assert_ok run_unit vunify-mount@.service ExecStop g2
assert_eq "" "$(mounted_type "$TEST_TMP/machines/g2")" "vunify-mount@g2 ExecStop unmounts"
assert_fail "${V[@]}" unify -q # the oracle: a plain unify refuses the run
# (written into the upper offline: its directories may have moved to the
# lower layer, lib/prune.h)
mkdir -p "$TEST_TMP/data/g2/upper/etc" "$TEST_TMP/data/g2/upper/usr/bin"
printf 'new\n' >"$TEST_TMP/data/g2/upper/etc/motd"
head -c 50000 /dev/urandom >"$TEST_TMP/data/g2/upper/usr/bin/tool2"
assert_ok run_unit vunify-unify.service ExecStart x
grep -q "^g1: mounted: .* the switch happens at its next 'vunify mount'" "$LAST_STDOUT" && _pass "nightly unify prepares mounted g1" || _fail "g1 not prepared: $(cat "$LAST_STDOUT")"
grep -q '^g2: not mounted: unified now' "$LAST_STDOUT" && _pass "nightly unify says g2 is unified now" || _fail "g2 not named: $(cat "$LAST_STDOUT")"
grep -Eq '^g2: [1-9][0-9]* files' "$LAST_STDOUT" && _pass "nightly unify re-unified g2" || _fail "g2 not unified: $(cat "$LAST_STDOUT")"
[ -e "$TEST_TMP/data/g2/upper/usr/bin/tool2" ] && _fail "g2's new tool still in its upper" || _pass "g2's new tool left its upper"

# A guest removed since its unit was enabled: one line, nothing changed.
assert_ok "${V[@]}" remove g2
snapshot "$TEST_TMP/before"
refused "mount 'g2': .*no such guest" run_unit vunify-mount@.service ExecStart g2
snapshot "$TEST_TMP/after"
assert_same_manifest "$TEST_TMP/before" "$TEST_TMP/after" "unit of a removed guest changed nothing"
assert_ok run_unit vunify-mount@.service ExecStop g1
assert_eq "" "$(mounted_type "$TEST_TMP/machines/g1")" "vunify-mount@g1 ExecStop unmounts"
# g1's next start carries out the switch the nightly run prepared
assert_ok run_unit vunify-mount@.service ExecStart g1
grep -q '^g1: switch: [0-9]* files in ' "$LAST_STDOUT" && _pass "vunify-mount@g1 switches g1: $(cat "$LAST_STDOUT")" || _fail "no switch at g1's start: $(cat "$LAST_STDOUT")"
assert_ok run_unit vunify-mount@.service ExecStop g1
