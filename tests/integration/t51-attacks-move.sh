#!/bin/bash
# Attack: `add --from TREE --move` skipped the filtering the copy does
# (issue 10, finding 6).  A moved tree kept its trusted.overlay.* xattrs
# (which steer overlayfs: opaque, origin, redirect, whiteout) and a 0:0
# character device, which the next unify took for a whiteout and deleted.
# A move must follow the copy's rule exactly: the 0:0 device refuses the
# tree (and leaves it untouched), trusted.overlay.* is dropped, and a moved
# guest looks exactly like a copied one.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd setfattr getfattr
need_bin "$VUNIFY" "$MANIFEST"

mkfs_loop 256M tmpfs "$TEST_TMP/fs"
V=("$VUNIFY" -p "$TEST_TMP/fs/pool")
assert_ok "${V[@]}" init || exit 1

# mktree DIR: a small guest tree carrying overlayfs's own xattrs
mktree() {
	mkdir -p "$1/usr/bin" "$1/usr/share/doc/x" "$1/etc" "$1/home/u"
	printf 'tool\n' >"$1/usr/bin/tool"
	printf 'doc\n' >"$1/usr/share/doc/x/README"
	printf 'conf\n' >"$1/etc/x.conf"
	printf 'private\n' >"$1/home/u/notes"
	: >"$1/home/u/empty"
	setfattr -n trusted.overlay.opaque -v y "$1/usr/share/doc/x"
	setfattr -n trusted.overlay.origin -v 0xfb "$1/etc/x.conf"
	setfattr -n trusted.overlay.redirect -v /elsewhere "$1/home/u"
	setfattr -n trusted.overlay.whiteout -v "" "$1/home/u/empty"
	setfattr -n user.kept -v yes "$1/etc/x.conf"
}

# -- overlay_xattrs_dropped_by_move: same rule as the copy
t=$TEST_TMP/fs
mktree "$t/tree-copy"
cp -a "$t/tree-copy" "$t/tree-move" # same times, same xattrs
[ "$(getfattr -h --only-values -n trusted.overlay.opaque "$t/tree-move/usr/share/doc/x" 2>/dev/null)" = y ] ||
	fatal "cp -a did not keep trusted.overlay.* (the test needs them in the source)"
assert_ok "${V[@]}" add gcopy "$t/hcopy" --from "$t/tree-copy" || exit 1
assert_ok "${V[@]}" add gmove "$t/hmove" --from "$t/tree-move" --move || exit 1
left=$(getfattr -R -h -d -m '^trusted\.overlay\.' --absolute-names "$t/hmove/upper" 2>/dev/null | grep -c '^trusted\.overlay\.')
assert_eq 0 "$left" "no trusted.overlay.* xattr kept by add --move"
assert_eq '"yes"' "$(getfattr -h --only-values -n user.kept "$t/hmove/upper/etc/x.conf" 2>/dev/null | sed 's/.*/"&"/')" \
	"other xattrs kept by add --move"
manifest "$t/hcopy/upper" "$TEST_TMP/copy.man" || exit 1
manifest "$t/hmove/upper" "$TEST_TMP/move.man" || exit 1
assert_same_manifest "$TEST_TMP/copy.man" "$TEST_TMP/move.man" "moved upper equals copied upper"

assert_ok "${V[@]}" unify
for g in gcopy gmove; do
	mkdir -p "$TEST_TMP/mnt/$g"
	assert_ok "${V[@]}" mount "$g" "$TEST_TMP/mnt/$g"
	manifest "$TEST_TMP/mnt/$g" "$TEST_TMP/$g.view.man"
	assert_ok "${V[@]}" umount "$g"
done
assert_same_manifest "$TEST_TMP/gcopy.view.man" "$TEST_TMP/gmove.view.man" \
	"after unify, the moved guest sees what the copied one sees"

# -- whiteout_device_refused_by_move: a 0:0 char device refuses the tree,
# as it refuses a copy, and the refused tree is left exactly as it was
mktree "$t/tree-dev"
mkdir -p "$t/tree-dev/var/lib"
mknod "$t/tree-dev/var/lib/dev0" c 0 0
manifest "$t/tree-dev" "$TEST_TMP/dev.before.man" || exit 1
getfattr -R -h -d -m - --absolute-names "$t/tree-dev" >"$TEST_TMP/dev.before.xattrs" 2>/dev/null
assert_fail_msg "character device 0:0 cannot be kept" "${V[@]}" add gdev "$t/hdev" --from "$t/tree-dev" --move
assert_fail_msg "character device 0:0 cannot be kept" "${V[@]}" add gdev2 "$t/hdev2" --from "$t/tree-dev"
assert_eq yes "$([ -c "$t/tree-dev/var/lib/dev0" ] && echo yes || echo no)" "the refused tree still holds its device"
manifest "$t/tree-dev" "$TEST_TMP/dev.after.man" || exit 1
assert_same_manifest "$TEST_TMP/dev.before.man" "$TEST_TMP/dev.after.man" "a refused --move leaves the tree as it was"
getfattr -R -h -d -m - --absolute-names "$t/tree-dev" >"$TEST_TMP/dev.after.xattrs" 2>/dev/null
assert_ok cmp "$TEST_TMP/dev.before.xattrs" "$TEST_TMP/dev.after.xattrs"
assert_fail "${V[@]}" status gdev
