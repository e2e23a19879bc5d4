#!/bin/bash
# A format-3 redirect pool (docs/FORMAT.md: HOME/meta, the stubs, is the
# record; HOME/meta.img, when there, an equal image of them) is read as it
# is and migrates to format 4 (the image is the record, no stubs on disk) on
# its first unify, keeping every file of every guest.  The format-3 homes
# are made as FORMAT.md describes them: the stubs written out from a
# format-4 image (every xattr, sparse sizes, hard links), vunify.conf set
# back to format 3; one guest keeps an equal image beside its stubs, one
# has none (an image an online switch or a killed run dropped).
. "$(dirname "$0")/lib.sh"
need_root
need_cmd cp
need_bin "$VUNIFY" "$MANIFEST"

mkfs_loop 2G ext4 "$TEST_TMP/fs"
t=$TEST_TMP/fs
V=("$VUNIFY" -p "$t/pool")
assert_ok "${V[@]}" init --layout redirect || exit 1
grep -q '^format 4$' "$t/pool/vunify.conf" && _pass "init writes format 4" || _fail "vunify.conf: $(cat "$t/pool/vunify.conf")"

# a real Debian tree (file capabilities, hard-link groups, symlinks)
"$TOP/scripts/debian-trees.sh" bookworm-minbase >"$TEST_TMP/trees.out" || fatal "debian-trees.sh failed"
tree=$(head -n 1 "$TEST_TMP/trees.out")
for g in g1 g2; do
	assert_ok "${V[@]}" add "$g" "$t/$g" --from "$tree" || exit 1
done
assert_ok "${V[@]}" unify
mkdir -p "$TEST_TMP/mnt"
for g in g1 g2; do
	[ -f "$t/$g/meta.img" ] && [ ! -e "$t/$g/meta" ] && _pass "$g: the image is the record" || _fail "$g: $(ls "$t/$g")"
	assert_ok "${V[@]}" mount "$g" "$TEST_TMP/mnt"
	manifest "$TEST_TMP/mnt" "$TEST_TMP/$g.v4.man"
	assert_ok "${V[@]}" umount "$g"
done

# Back to format 3: the stubs written out from the image, then the image
# kept (g1: equal to the stubs) or dropped (g2).
for g in g1 g2; do
	l=$(lower_open "$t/$g") || fatal "mount $g's image"
	cp -a --sparse=always "$l" "$t/$g/meta" || fatal "copy $g's stubs"
	lower_close "$l"
done
rm "$t/g2/meta.img"
sed -i 's/^format 4$/format 3/' "$t/pool/vunify.conf"
objects_before=$(find "$t/pool/objects" -type f | wc -l)

# Readers of the format-3 pool: views, fsck, status, gc keep every object.
for g in g1 g2; do
	assert_ok "${V[@]}" mount "$g" "$TEST_TMP/mnt"
	manifest "$TEST_TMP/mnt" "$TEST_TMP/$g.v3.man"
	assert_ok "${V[@]}" umount "$g"
	assert_same_manifest "$TEST_TMP/$g.v4.man" "$TEST_TMP/$g.v3.man" "$g: the format-3 view"
done
assert_status 0 "${V[@]}" fsck
assert_ok "${V[@]}" gc
assert_eq "$objects_before" "$(find "$t/pool/objects" -type f | wc -l)" "gc on the format-3 pool keeps every object"
grep -q '^format 3$' "$t/pool/vunify.conf" && _pass "readers leave the format as it is" || _fail "vunify.conf: $(cat "$t/pool/vunify.conf")"

# The first unify migrates: format 4, an image each, no stubs on disk.
# (g1 ran: a file of its own, so that the unify changes its lower layer.)
assert_ok "${V[@]}" mount g1 "$TEST_TMP/mnt"
echo "after migration" >"$TEST_TMP/mnt/usr/share/new-file"
rm "$TEST_TMP/mnt/usr/bin/dpkg-split" # a whiteout to fold
manifest "$TEST_TMP/mnt" "$TEST_TMP/g1.v3.man"
assert_ok "${V[@]}" umount g1
[ -c "$t/g1/upper/usr/bin/dpkg-split" ] || fatal "rm in the view left no whiteout"
assert_ok "${V[@]}" unify
grep -q '^format 4$' "$t/pool/vunify.conf" && _pass "unify migrates the pool to format 4" || _fail "vunify.conf: $(cat "$t/pool/vunify.conf")"
for g in g1 g2; do
	[ -f "$t/$g/meta.img" ] && _pass "$g has its image" || _fail "$g has no image: $(ls "$t/$g")"
	[ ! -e "$t/$g/meta" ] && _pass "$g: no stubs on disk" || _fail "$g: stubs left beside the image"
	assert_ok "${V[@]}" mount "$g" "$TEST_TMP/mnt"
	manifest "$TEST_TMP/mnt" "$TEST_TMP/$g.after.man"
	assert_ok "${V[@]}" umount "$g"
	assert_same_manifest "$TEST_TMP/$g.v3.man" "$TEST_TMP/$g.after.man" "$g: every file kept by the migration"
done
[ ! -e "$t/g1/upper/usr/share/new-file" ] && _pass "g1's new file was unified" || _fail "g1's new file stayed in the upper"
[ ! -e "$t/g1/upper/usr/bin/dpkg-split" ] && [ ! -L "$t/g1/upper/usr/bin/dpkg-split" ] && _pass "g1's whiteout was folded" ||
	_fail "g1's whiteout left in the upper: $(ls -l "$t/g1/upper/usr/bin/dpkg-split")"
assert_status 0 "${V[@]}" fsck
# the oracle sees a lost file
l=$(lower_open "$t/g1") || fatal "mount g1's image"
[ -f "$l/usr/share/new-file" ] && _pass "the image holds g1's new file" || _fail "the image lacks g1's new file"
lower_close "$l"
