#!/bin/bash
# The comparer itself: build/tools/manifest is what every fidelity check
# relies on, so prove it is deterministic, sees a faithful copy (cp -a) of
# the hostile tree as equal, and - the must-fail half - notices each kind
# of change SPEC invariant 1 names: each change is made to the tree, must
# show in its manifest, and is undone again (which must show as equal).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
need_root
need_cmd setfattr setfacl mkfifo mknod fallocate
need_bin "$MANIFEST"

fs=$TEST_TMP/fs
mkfs_loop 8G ext4 "$fs"
tree=$fs/tree
copy=$fs/copy
assert_ok "$TOP/tests/integration/mk-hostile.sh" "$tree" || exit 1

# Sparse files cost seconds to hash; most checks leave them out.
fast=(--skip var/lib/disk.img --skip opt/sparse.img)
m=$TEST_TMP/m
manifest "$tree" "$m.tree1" || exit 1
manifest "$tree" "$m.tree2" || exit 1
assert_same_manifest "$m.tree1" "$m.tree2" "deterministic: two runs agree"

# Shape of the output: one line per entry, escaped, nothing followed
# through a symlink.
assert_eq "$(find "$tree" -printf x | wc -c)" "$(wc -l <"$m.tree1")" "one line per entry"
assert_ok grep -q '^/home/odd/a\\x0ab file ' "$m.tree1"
assert_ok grep -q '^/home/odd/back\\x5cslash file ' "$m.tree1"
assert_ok grep -q '^/home/odd/\\x20lead\\x20and\\x20trail\\x20 file ' "$m.tree1"
assert_ok grep -q '^/home/odd/\\xff\\xfe\\x80 file ' "$m.tree1"
assert_ok grep -q '^/usr/lib/evil symlink .* target=/etc ' "$m.tree1"
assert_fail grep -q '^/usr/lib/evil/' "$m.tree1"
assert_ok grep -q '^/dev/blk blk mode=0644 uid=0 gid=0 rdev=7:200 ' "$m.tree1"
assert_ok grep -q '^/var/lib/disk.img file .* size=3221225472 ' "$m.tree1"
assert_ok grep -q 'security.capability=' "$m.tree1"
assert_ok grep -q 'system.posix_acl_default=' "$m.tree1"
assert_ok grep -q '^/var/lib/hl/db .* link=/var/cache/hl/db$' "$m.tree1"
assert_ok grep -q '^/usr/lib/hl/sym2 symlink .* link=/usr/lib/hl/sym1$' "$m.tree1"
assert_ok grep -q '^/usr/share/meta-0600 .* mtime=-302486400.500000000 ' "$m.tree1"
assert_ok grep -q '/d/d/file file ' "$m.tree1"
assert_eq 0 "$(awk '{ print NF }' "$m.tree1" | sort -u | awk '$1 < 5' | wc -l)" "no line split by a name"
manifest "$tree" "$m.noino" --no-ino "${fast[@]}" || exit 1
assert_fail grep -q ' link=' "$m.noino"

# A faithful copy has other inode numbers but the same view.  Neither cp
# nor tar copes with paths beyond PATH_MAX, so the 6300-byte chain is moved
# aside meanwhile (directory mtimes are not in a manifest).
chain=$(cd "$tree/usr/share/deep" && echo n*)
assert_ok mv "$tree/usr/share/deep/$chain" "$fs/chain" || exit 1
assert_ok cp -a "$tree" "$copy"
assert_ok mv "$fs/chain" "$tree/usr/share/deep/$chain" || exit 1
assert_same_tree "$tree" "$copy" --skip "usr/share/deep/$chain" "${fast[@]}"
rm -rf "$copy"

# Undisturbed copies to restore from (cp -a keeps all of it).
mkdir "$fs/orig"
cp -a "$tree/usr/bin/ping" "$tree/etc/evil-passwd" "$tree/dev/blk" "$tree/var/spool/fifo" \
	"$tree/usr/share/doc/b/copyright" "$fs/orig/"
manifest "$tree" "$m.base" "${fast[@]}" || exit 1

# must_differ DESC [full]: the tree's manifest must now differ from the
# one taken at the start (the full one with "full", else without the
# sparse files).
must_differ() {
	local base=$m.base opts=("${fast[@]}")
	if [ "${2:-}" = full ]; then
		base=$m.tree1
		opts=()
	fi
	manifest "$tree" "$m.now" "${opts[@]}" || return 1
	if cmp -s "$base" "$m.now"; then
		_fail "not detected: $1"
	else
		_pass "detected: $1"
	fi
}

# must_agree DESC: the tree looks as at the start again.
must_agree() {
	manifest "$tree" "$m.now" "${fast[@]}" || return 1
	assert_same_manifest "$m.base" "$m.now" "$1"
}

c=$tree
# Content: one byte, size and mtime kept.
f=$c/usr/lib/big1
touch -r "$f" "$fs/orig/big1.time"
orig=$(dd if="$f" bs=1 skip=500000 count=1 status=none | od -An -tx1 | tr -d ' ')
printf '\x00' | dd of="$f" bs=1 seek=500000 conv=notrunc status=none
[ "$orig" = 00 ] && printf '\x01' | dd of="$f" bs=1 seek=500000 conv=notrunc status=none
touch -r "$fs/orig/big1.time" "$f"
must_differ "one changed byte"
printf '%b' "\\x$orig" | dd of="$f" bs=1 seek=500000 conv=notrunc status=none
touch -r "$fs/orig/big1.time" "$f"
must_agree "byte restored"

# Content inside a hole of the 3 GiB sparse file, then punched out again.
f=$c/var/lib/disk.img
touch -r "$f" "$fs/orig/disk.time"
printf x | dd of="$f" bs=1 seek=$((2 << 30)) conv=notrunc status=none
touch -r "$fs/orig/disk.time" "$f"
must_differ "a byte written in a hole (full manifest)" full
fallocate -p -o $((2 << 30)) -l 4096 "$f"
touch -r "$fs/orig/disk.time" "$f"
manifest "$tree" "$m.now" || exit 1
assert_same_manifest "$m.tree1" "$m.now" "hole punched again (full manifest)"

chmod 0640 "$c/usr/share/meta-0644"
must_differ "mode 0644 -> 0640"
chmod 0644 "$c/usr/share/meta-0644"
chmod u-s "$c/usr/bin/suid-root"
must_differ "setuid bit dropped"
chmod 4755 "$c/usr/bin/suid-root"
chown 1:0 "$c/usr/share/meta-0644"
must_differ "owner changed"
chown 0:1 "$c/usr/share/meta-0644"
must_differ "group changed"
chown 0:0 "$c/usr/share/meta-0644"
must_agree "mode and owner restored"

setfattr -n user.comment -v "hello worle" "$c/usr/share/xattr-file"
must_differ "xattr value changed"
setfattr -n user.comment -v "hello world" "$c/usr/share/xattr-file"
setfattr -x user.x17 "$c/usr/share/many-xattrs"
must_differ "one of 40 xattrs removed"
setfattr -n user.x17 -v "value 17" "$c/usr/share/many-xattrs"
setfattr -n user.new "$c/usr/share/doc"
must_differ "xattr added to a directory"
setfattr -x user.new "$c/usr/share/doc"
setfattr -h -x trusted.on-symlink "$c/etc/evil-passwd"
must_differ "xattr of a symlink removed"
setfattr -h -n trusted.on-symlink -v 1 "$c/etc/evil-passwd"
setfacl -m u:1234:r "$c/etc/acl-file"
must_differ "ACL entry changed"
setfacl -m u:1234:rw "$c/etc/acl-file"
setfattr -x security.capability "$c/usr/bin/ping"
must_differ "capability removed"
cp -a "$fs/orig/ping" "$c/usr/bin/ping"
must_agree "xattrs, ACL and capability restored"

# trusted.overlay.* steer overlayfs and are never part of a guest's view.
setfattr -n trusted.overlay.origin -v x "$c/usr/share/meta-0644"
must_agree "trusted.overlay.* ignored"
setfattr -x trusted.overlay.origin "$c/usr/share/meta-0644"

touch -d '2001-02-03 04:05:06.123456788' "$c/usr/share/meta-0644"
must_differ "mtime off by one nanosecond"
touch -d '2001-02-03 04:05:06.123456789' "$c/usr/share/meta-0644"
touch -h -d '2001-02-03 04:05:06.987654320' "$c/etc/evil-passwd"
must_differ "symlink mtime changed"
touch -h -d '2001-02-03 04:05:06.987654321' "$c/etc/evil-passwd"
must_agree "times restored"

# Hard links: same content and metadata, only the grouping changes.
manifest "$tree" "$m.base-noino" --no-ino "${fast[@]}" || exit 1
cp -p "$c/usr/lib/hl/hl-usr" "$c/usr/lib/hl/hl-usr.new"
mv "$c/usr/lib/hl/hl-usr.new" "$c/usr/lib/hl/hl-usr"
must_differ "hard link split off a group of 3"
manifest "$tree" "$m.now-noino" --no-ino "${fast[@]}" || exit 1
assert_same_manifest "$m.base-noino" "$m.now-noino" "--no-ino hides only the grouping"
ln -f "$c/usr/bin/hl-usr" "$c/usr/lib/hl/hl-usr"
must_agree "hard link restored"
# Two equal files (same mtime too) joined into one group: compared with
# the state just before, since the two files differ in mtime.
touch -r "$c/usr/share/doc/a/copyright" "$c/usr/share/doc/b/copyright"
manifest "$tree" "$m.pre" "${fast[@]}" || exit 1
manifest "$tree" "$m.pre-noino" --no-ino "${fast[@]}" || exit 1
ln -f "$c/usr/share/doc/a/copyright" "$c/usr/share/doc/b/copyright"
manifest "$tree" "$m.post" "${fast[@]}" || exit 1
manifest "$tree" "$m.post-noino" --no-ino "${fast[@]}" || exit 1
assert_fail cmp -s "$m.pre" "$m.post"
assert_same_manifest "$m.pre-noino" "$m.post-noino" "joining two equal files changes only the grouping"
rm "$c/usr/share/doc/b/copyright"
cp -a "$fs/orig/copyright" "$c/usr/share/doc/b/copyright"
must_agree "separate files restored"

ln -sfn /etc/shadow "$c/etc/evil-passwd"
must_differ "symlink target changed"
rm "$c/etc/evil-passwd"
cp -a "$fs/orig/evil-passwd" "$c/etc/evil-passwd"
rm "$c/dev/blk"
mknod "$c/dev/blk" b 7 201
touch -r "$fs/orig/blk" "$c/dev/blk"
must_differ "device number changed"
rm "$c/dev/blk"
cp -a "$fs/orig/blk" "$c/dev/blk"
rm "$c/var/spool/fifo"
: >"$c/var/spool/fifo"
touch -r "$fs/orig/fifo" "$c/var/spool/fifo"
must_differ "fifo became an empty file"
rm "$c/var/spool/fifo"
cp -a "$fs/orig/fifo" "$c/var/spool/fifo"
must_agree "special files restored"

: >"$c/var/lib/locked/extra"
must_differ "file added inside a mode 0000 directory"
rm "$c/var/lib/locked/extra"
mv "$c/home/odd/a"$'\n'"b" "$c/home/odd/a"$'\r'"b"
must_differ "newline in a name became a carriage return"
mv "$c/home/odd/a"$'\r'"b" "$c/home/odd/a"$'\n'"b"
# deep_file TEXT: rewrite the file 1100 levels down, keeping its mtime.
deep_file() {
	(
		cd "$c/usr/share/deep" || exit 1
		for _ in $(seq 11); do cd "$(printf 'd/%.0s' $(seq 100))" || exit 1; done
		touch -r file "$fs/orig/deep.time"
		echo "$1" >file
		touch -r "$fs/orig/deep.time" file
	)
}
manifest "$tree" "$m.skip-before" --skip /usr/share/deep/d/ "${fast[@]}" || exit 1
deep_file "1100 levels down, changed"
must_differ "file 1100 levels down changed"
manifest "$tree" "$m.skip-after" --skip usr/share/deep/d "${fast[@]}" || exit 1
assert_same_manifest "$m.skip-before" "$m.skip-after" "--skip leaves the subtree out"
deep_file "1100 levels down"
must_agree "deep file restored"

# Usage and errors.
assert_status 2 "$MANIFEST"
assert_status 2 "$MANIFEST" --bogus "$tree"
assert_status 2 "$MANIFEST" --skip / "$tree"
assert_fail_msg "manifest: open '.*nonexistent': No such file" "$MANIFEST" "$TEST_TMP/nonexistent"
assert_fail_msg "manifest: open '.*': Not a directory" "$MANIFEST" "$tree/etc/passwd"
