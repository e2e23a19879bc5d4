# shellcheck shell=bash
# Body of t10/t11: synthetic hostile guests (mk-hostile.sh) in the layout
# $LAYOUT, each guest on a filesystem of its own, the pool on another.
# Checks fidelity of add and unify, isolation, that nothing is followed
# out of the tree, and the bad inputs that must fail cleanly and lose
# nothing: bad names, usage errors, overlay-special files, a mounted
# guest, a symlinked upper, a full pool (then re-run after growing it).

need_root
need_cmd losetup resize2fs jq
need_bin "$VUNIFY" "$MANIFEST"

V=("$VUNIFY" -p "$TEST_TMP/poolfs/pool")
mopt=()
[ "$LAYOUT" = link ] && mopt=(--no-ino)

mkfs_loop 1G ext4 "$TEST_TMP/poolfs"
mkdir -p "$TEST_TMP/canary"
echo canary >"$TEST_TMP/canary/file"
for s in 1 2; do
	bash "$TOP/tests/integration/mk-hostile.sh" --seed "$s" "$TEST_TMP/src$s" >"$TEST_TMP/mk$s.log" 2>&1 ||
		fatal "mk-hostile.sh: $(tail -3 "$TEST_TMP/mk$s.log")"
	# symlinks at a directory outside the tree: a follower would write there
	ln -s "$TEST_TMP/canary" "$TEST_TMP/src$s/usr/lib/canary"
	ln -s "$TEST_TMP/canary/file" "$TEST_TMP/src$s/usr/bin/canary-file"
	manifest "$TEST_TMP/src$s" "$TEST_TMP/src$s.man" "${mopt[@]}"
done
canary_state() {
	stat -c '%n %s %Y.%y %i %h' "$TEST_TMP/canary" "$TEST_TMP/canary/file"
	ls -A "$TEST_TMP/canary"
	sha256sum "$TEST_TMP/canary/file"
}
canary_before=$(canary_state)

assert_ok "${V[@]}" init --layout "$LAYOUT"
# h1 and h2 share content (same seed), h3 differs
srcs=(1 1 2)
for i in 1 2 3; do
	mkfs_loop 6G ext4 "$TEST_TMP/h$i.fs"
	assert_ok "${V[@]}" add "h$i" "$TEST_TMP/h$i.fs/home" --from "$TEST_TMP/src${srcs[$((i - 1))]}"
	manifest "$TEST_TMP/h$i.fs/home/upper" "$TEST_TMP/h$i.upper.man" "${mopt[@]}"
	assert_same_manifest "$TEST_TMP/src${srcs[$((i - 1))]}.man" "$TEST_TMP/h$i.upper.man" "add --from is faithful (h$i)"
done
sparse_blocks=$(stat -c %b "$TEST_TMP/h1.fs/home/upper/var/lib/disk.img")
assert_eq 0 "$sparse_blocks" "sparse 3 GiB file stays sparse in the upper"

assert_ok "${V[@]}" unify
cat "$LAST_STDOUT"
assert_status 0 "${V[@]}" fsck
for i in 1 2 3; do
	mkdir -p "$TEST_TMP/mnt/h$i"
	assert_ok "${V[@]}" mount "h$i" "$TEST_TMP/mnt/h$i" || continue
	manifest "$TEST_TMP/mnt/h$i" "$TEST_TMP/h$i.view.man" "${mopt[@]}"
	assert_same_manifest "$TEST_TMP/src${srcs[$((i - 1))]}.man" "$TEST_TMP/h$i.view.man" "merged view of h$i equals its tree"
done
obj_kib=$(du -sk "$TEST_TMP/poolfs/pool/objects" | cut -f1)
[ "$obj_kib" -lt 65536 ] && _pass "sparse objects stay sparse (objects use ${obj_kib} KiB)" ||
	_fail "objects use ${obj_kib} KiB: a sparse file was stored dense"

# Isolation: write through h1 into a file h2 shares.
f=$(cd "$TEST_TMP/mnt/h1" && find usr -type f -size +1k -name '*.dat' | head -1)
[ -n "$f" ] || f=$(cd "$TEST_TMP/mnt/h1" && find usr -type f -size +1k | head -1)
echo "h1 was here" >>"$TEST_TMP/mnt/h1/$f"
manifest "$TEST_TMP/mnt/h2" "$TEST_TMP/h2.view2.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/h2.view.man" "$TEST_TMP/h2.view2.man" "a write in h1 ('$f') leaves h2 as it was"
assert_status 0 "${V[@]}" fsck

# Invariant 6 and must-fail inputs.
assert_fail_msg "mounted" "${V[@]}" unify h1
assert_fail_msg "invalid guest name" "${V[@]}" add "bad/name" "$TEST_TMP/x"
assert_fail_msg "invalid guest name" "${V[@]}" add ".hidden" "$TEST_TMP/x"
assert_fail_msg "invalid guest name" "${V[@]}" add "$(printf 'a%.0s' {1..65})" "$TEST_TMP/x"
assert_status 2 "${V[@]}" add onlyname
assert_status 2 "${V[@]}" unify --no-such-option
assert_status 2 "${V[@]}" frobnicate
assert_fail_msg "no such guest|unknown guest" "${V[@]}" mount nosuch "$TEST_TMP/mnt/h1"
assert_fail_msg "already registered" "${V[@]}" add h1 "$TEST_TMP/x"
assert_fail_msg "No such file" "${VUNIFY}" -p "$TEST_TMP/nopool" status
for i in 1 2 3; do
	assert_ok "${V[@]}" umount "h$i"
done
assert_fail_msg "not mounted" "${V[@]}" umount h1

# What overlayfs itself would interpret must not sneak in through add.
bash "$TOP/tests/integration/mk-hostile.sh" --overlay-attacks "$TEST_TMP/attack" >"$TEST_TMP/mka.log" 2>&1 ||
	fatal "mk-hostile.sh --overlay-attacks: $(tail -3 "$TEST_TMP/mka.log")"
assert_fail_msg "character device 0:0" "${V[@]}" add evil "$TEST_TMP/h3.fs/evil" --from "$TEST_TMP/attack"
"${V[@]}" status --json >"$TEST_TMP/st.json"
assert_eq 0 "$(jq '[.guests[] | select(.name == "evil")] | length' "$TEST_TMP/st.json")" "refused add registers nothing"

# A home whose upper was replaced by a symlink is refused, nothing followed.
mkfs_loop 256M ext4 "$TEST_TMP/s.fs"
mkdir -p "$TEST_TMP/s.fs/tree/usr/bin"
echo data >"$TEST_TMP/s.fs/tree/usr/bin/tool"
assert_ok "${V[@]}" add sym "$TEST_TMP/s.fs/home" --from "$TEST_TMP/s.fs/tree"
mv "$TEST_TMP/s.fs/home/upper" "$TEST_TMP/s.fs/home/upper.real"
ln -s "$TEST_TMP/canary" "$TEST_TMP/s.fs/home/upper"
assert_fail "${V[@]}" unify sym
rm "$TEST_TMP/s.fs/home/upper"
mv "$TEST_TMP/s.fs/home/upper.real" "$TEST_TMP/s.fs/home/upper"

canary_after=$(canary_state)
assert_eq "$canary_before" "$canary_after" "nothing written through symlinks out of the trees"

# A full pool: clear error, every guest intact, re-run after growing it.
mkfs_loop 48M ext4 "$TEST_TMP/small"
S=("$VUNIFY" -p "$TEST_TMP/small/pool")
assert_ok "${S[@]}" init --layout "$LAYOUT"
mkdir -p "$TEST_TMP/big/usr/lib"
for n in $(seq 1 12); do
	head -c 8M /dev/urandom >"$TEST_TMP/big/usr/lib/blob$n"
done
manifest "$TEST_TMP/big" "$TEST_TMP/big.man" "${mopt[@]}"
mkfs_loop 512M ext4 "$TEST_TMP/b.fs"
assert_ok "${S[@]}" add big "$TEST_TMP/b.fs/home" --from "$TEST_TMP/big"
assert_fail_msg "No space left on device" "${S[@]}" unify
mkdir -p "$TEST_TMP/mnt/big"
assert_ok "${S[@]}" mount big "$TEST_TMP/mnt/big"
manifest "$TEST_TMP/mnt/big" "$TEST_TMP/big.view.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/big.man" "$TEST_TMP/big.view.man" "after ENOSPC the guest sees its whole tree"
assert_ok "${S[@]}" umount big
assert_status 0 "${S[@]}" fsck
img=$(findmnt -n -o SOURCE "$TEST_TMP/small")
back=$(losetup -n -O BACK-FILE "$img")
# grow it offline (a small ext4 cannot always grow online)
umount "$TEST_TMP/small" && truncate -s 256M "$back" && losetup -c "$img" && e2fsck -fy "$img" >/dev/null 2>&1 &&
	resize2fs "$img" >/dev/null 2>&1 && mount "$img" "$TEST_TMP/small" || fatal "cannot grow the pool fs"
assert_ok "${S[@]}" unify
assert_ok "${S[@]}" mount big "$TEST_TMP/mnt/big"
manifest "$TEST_TMP/mnt/big" "$TEST_TMP/big.view2.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/big.man" "$TEST_TMP/big.view2.man" "re-run after growing the pool finishes the work"
assert_ok "${S[@]}" umount big
assert_ok "${S[@]}" status --json
assert_eq 12 "$(jq '.guests[0].files_unified' "$LAST_STDOUT")" "all 12 blobs unified after the re-run"
