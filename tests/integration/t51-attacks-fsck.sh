#!/bin/bash
# Attacks on the pool's owner and modes and on fsck (issue 10, findings 4
# and 9, and the fsck half of finding 1):
#  - the pool and objects/ could be traversed by any host user (an existing
#    directory kept its mode; objects/ was 0755), exposing guests' files;
#  - a kill between a same-filesystem adoption and its cleanup left an
#    object owned by uid 1000, mode 0666, and fsck said nothing;
#  - fsck changed a mounted guest's lower layer;
#  - an upper file that is also a pool object (same inode) was not seen;
#  - a link-layout object whose mode was changed (setuid added) was not seen.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd setfattr setpriv
need_bin "$VUNIFY"

mkfs_loop 256M tmpfs "$TEST_TMP/fs"
t=$TEST_TMP/fs
# host users can walk down to the pool's parent: only the pool's own
# directories may keep them out
chmod 755 "$TEST_TMP" "$t"
setpriv --reuid 65534 --regid 65534 --clear-groups ls "$t" >/dev/null || fatal "nobody cannot reach '$t'"

# modes PATH...: "uid:gid:mode" of each
modes() { stat -c '%u:%g:%a' "$@" | sort -u | tr '\n' ' '; }

# mkguest HOME: a small tree with a private 0600 file under /etc
mkguest() {
	mkdir -p "$1/upper/usr/bin" "$1/upper/etc"
	printf '#!/bin/sh\necho tool\n' >"$1/upper/usr/bin/tool"
	chmod 755 "$1/upper/usr/bin/tool"
	printf 'secret\n' >"$1/upper/etc/secret"
	chmod 600 "$1/upper/etc/secret"
	chown 1000:1000 "$1/upper/etc/secret"
	# equal times: two guests' equal files share one link-layout object
	touch -d @1700000000 "$1/upper/usr/bin/tool" "$1/upper/etc/secret"
}

# -- pool_dirs_traversable: init on an existing 0755 directory, writers
# and fsck put the pool's directories back to root 0700
mkdir -p "$t/pr"
chmod 755 "$t/pr"
V=("$VUNIFY" -p "$t/pr")
assert_ok "${V[@]}" init --layout redirect || exit 1
assert_eq "0:0:700 " "$(modes "$t/pr" "$t/pr/objects" "$t/pr/objects/00" "$t/pr/objects/ff" "$t/pr/roots" "$t/pr/guests" "$t/pr/tmp")" \
	"init makes the pool and every directory in it root 0700 (an existing directory too)"
mkguest "$t/h1"
assert_ok "${V[@]}" add g1 "$t/h1" || exit 1
chmod 755 "$t/pr" "$t/pr/objects"
chown 1000:1000 "$t/pr/objects/3f"
chmod 777 "$t/pr/objects/3f"
assert_ok "${V[@]}" unify
assert_eq "0:0:700 " "$(modes "$t/pr" "$t/pr/objects" "$t/pr/objects/3f")" "a writer puts the directories right"
if grep -q "put right the owner or mode of 3 directories" "$LAST_STDERR"; then
	_pass "and says so"
else
	_fail "unify did not say it fixed 3 directories: $(cat "$LAST_STDERR")"
fi
chmod 711 "$t/pr/objects/a0"
assert_status 1 "${V[@]}" fsck
assert_eq "0:0:700 " "$(modes "$t/pr/objects/a0")" "fsck puts a fan-out directory right"
grep -q "pool: 1 directories had a wrong owner or mode" "$LAST_STDOUT" && _pass "fsck names it" ||
	_fail "fsck did not report the directory: $(cat "$LAST_STDOUT")"
assert_status 0 "${V[@]}" fsck

# -- object_read_by_host_user: the guest's 0600 /etc/secret is an object
# (root 0444, content only); no other host user can reach it
obj=$(find "$t/pr/objects" -type f -exec grep -l '^secret$' {} + | head -n 1)
[ -n "$obj" ] || fatal "no object for /etc/secret after unify"
assert_eq "0:0:444 " "$(modes "$obj")" "a redirect object is root 0444"
assert_fail setpriv --reuid 65534 --regid 65534 --clear-groups cat "$obj"
assert_fail setpriv --reuid 1000 --regid 1000 --clear-groups cat "$obj"

# -- object_left_with_guest_owner: a redirect object that kept a guest's
# owner and mode (a kill between adoption and cleanup) is found, repaired
chown 1000:1000 "$obj"
chmod 4666 "$obj"
setfattr -n user.planted -v x "$obj"
assert_status 1 "${V[@]}" fsck
grep -q "owner, mode or xattrs are not root:root, 0444, none" "$LAST_STDOUT" && _pass "fsck reports the object's owner and mode" ||
	_fail "fsck did not report the object: $(cat "$LAST_STDOUT")"
assert_eq "1000:1000:4666 " "$(modes "$obj")" "fsck without --repair leaves the object alone"
assert_status 0 "${V[@]}" fsck --repair
assert_eq "0:0:444 " "$(modes "$obj")" "fsck --repair makes it root 0444"
assert_eq "" "$(getfattr -h -d -m - --absolute-names "$obj" 2>/dev/null)" "and drops its xattrs"
assert_status 0 "${V[@]}" fsck

# -- fsck_changes_mounted_guest: stubs beside the metadata image (the
# record: a unify killed before removing an older pool's stubs leaves them)
# are a leftover fsck removes, but never while the guest is mounted
[ -f "$t/h1/meta.img" ] || fatal "g1 has no metadata image"
mkdir -p "$t/h1/meta/var" "$t/h1/upper/var"
printf 'upper copy\n' >"$t/h1/upper/var/torn"
printf 'x' >"$t/h1/meta/var/torn" # no metacopy, no redirect: malformed
mkdir -p "$TEST_TMP/mnt1"
assert_ok "${V[@]}" mount g1 "$TEST_TMP/mnt1"
assert_fail "${V[@]}" fsck --repair
grep -q "guest g1: mounted at" "$LAST_STDOUT" && _pass "fsck says the guest is mounted" ||
	_fail "fsck did not say g1 is mounted: $(cat "$LAST_STDOUT")"
assert_eq yes "$([ -e "$t/h1/meta/var/torn" ] && echo yes || echo no)" "fsck left the mounted guest's lower layer alone"
assert_eq "upper copy" "$(cat "$TEST_TMP/mnt1/var/torn")" "the guest still reads its file"
assert_ok "${V[@]}" umount g1
assert_status 0 "${V[@]}" fsck
assert_eq no "$([ -e "$t/h1/meta" ] && echo yes || echo no)" "unmounted, fsck removes the leftover"

# -- upper_inode_is_object: link layout, pool and upper on one filesystem;
# an upper file hard-linked to an object (an adoption killed before the
# upper name went) is reported, and --repair gives it an inode of its own
V2=("$VUNIFY" -p "$t/pl")
assert_ok "${V2[@]}" init --layout link || exit 1
mkguest "$t/h2"
mkguest "$t/h3"
assert_ok "${V2[@]}" add g2 "$t/h2" || exit 1
assert_ok "${V2[@]}" add g3 "$t/h3" || exit 1
assert_ok "${V2[@]}" unify || exit 1
tool_obj=$(find "$t/pl/objects" -samefile "$t/pl/roots/g2/usr/bin/tool" | head -n 1)
[ -n "$tool_obj" ] || fatal "no object for /usr/bin/tool"
[ "$t/pl/roots/g3/usr/bin/tool" -ef "$tool_obj" ] || fatal "g2 and g3 do not share /usr/bin/tool"
mkdir -p "$t/h2/upper/usr/bin" # unify may have moved it to the lower layer (lib/prune.h)
ln "$tool_obj" "$t/h2/upper/usr/bin/tool"
assert_status 1 "${V2[@]}" fsck
grep -q "guest g2: upper file /usr/bin/tool is the pool object" "$LAST_STDOUT" && _pass "fsck reports the shared inode" ||
	_fail "fsck did not report the upper file: $(cat "$LAST_STDOUT")"
assert_status 0 "${V2[@]}" fsck --repair
assert_eq no "$([ "$t/h2/upper/usr/bin/tool" -ef "$tool_obj" ] && echo yes || echo no)" "the upper file has an inode of its own"
mkdir -p "$TEST_TMP/mnt2" "$TEST_TMP/mnt3"
assert_ok "${V2[@]}" mount g2 "$TEST_TMP/mnt2"
assert_ok "${V2[@]}" mount g3 "$TEST_TMP/mnt3"
printf 'written by g2\n' >"$TEST_TMP/mnt2/usr/bin/tool"
assert_eq "echo tool" "$(tail -n 1 "$TEST_TMP/mnt3/usr/bin/tool")" "g2's write does not reach g3"
assert_ok "${V2[@]}" umount g2
assert_ok "${V2[@]}" umount g3

# -- link_object_mode_changed: setuid added to a link-layout object (its
# inode is what guests run) no longer matches its name: reported
chmod u+s "$tool_obj"
assert_status 1 "${V2[@]}" fsck
grep -q "differ from those its name was made from" "$LAST_STDOUT" && _pass "fsck reports the changed link object" ||
	_fail "fsck did not report the changed object: $(cat "$LAST_STDOUT")"
chmod u-s "$tool_obj"
assert_status 0 "${V2[@]}" fsck
