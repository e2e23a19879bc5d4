#!/bin/bash
# Attacks from the adversarial review (issue 10), one case each, named after
# the attack.  Each case sets up its own small pool and guests and checks
# that the attack is refused or harmless:
#
#   guest_mounted_in_another_namespace    unify refuses (invariant 6)
#   lazily_unmounted_guest_with_open_fd   unify refuses (invariant 6)
#   guest_mounted_through_a_bind_mount    unify refuses (invariant 6)
#   file_edited_between_hash_and_removal  the edit survives (invariant 1)
#   file_recreated_at_a_whiteout_path     the new file survives (1)
#   upper_file_hard_linked_to_an_object   a re-run finishes it; the guest
#                                         cannot write into the pool (2)
#   object_written_through_before_rerun   the misnamed object leaves objects/
#   misnamed_object_dropped_before_any_link  ... before another guest's file
#                                         of the same run is linked to it
#   kill_9_during_same_fs_link_adoption   no instant where an upper name and
#                                         an object share an inode (2, 3)
#   fifo_swapped_in_before_open           a path swapped for a FIFO (or a
#                                         device node) is never opened
#   eio_while_hashing                     a read error is reported, naming
#                                         the file, not taken as "changed"
#
# Pausing a command at an exact point: strace's syscall injection delays the
# Nth call of a syscall (run_paused), and the test acts while it waits.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd strace unshare mkfs.btrfs mkfifo
need_bin "$VUNIFY" "$MANIFEST"

mkfs_loop 768M ext4 "$TEST_TMP/poolfs"
mkfs_loop 768M ext4 "$TEST_TMP/guestfs"
n_case=0
# LeakSanitizer cannot run under ptrace: commands run under strace skip it
NOLEAK=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0

# mktree DIR: a small guest tree (a library, a tool, a config, a log).
mktree() {
	mkdir -p "$1/usr/bin" "$1/usr/lib" "$1/etc" "$1/var/log"
	head -c 300000 /dev/urandom >"$1/usr/lib/libdemo.so"
	printf '#!/bin/sh\necho tool\n' >"$1/usr/bin/tool"
	chmod 0755 "$1/usr/bin/tool"
	head -c 20000 /dev/urandom >"$1/usr/bin/other"
	echo "setting=1" >"$1/etc/demo.conf"
	echo "log line" >"$1/var/log/demo.log"
	touch -d '2024-01-02 03:04:05' "$1"/usr/lib/* "$1"/usr/bin/* "$1"/etc/*
}

# newcase NAME LAYOUT SAMEFS: a fresh pool; sets C (case dir), V (vunify
# with the pool), HB (where homes go: the pool's filesystem when SAMEFS=1).
newcase() {
	n_case=$((n_case + 1))
	echo "# case $1"
	C=$TEST_TMP/c$n_case
	mkdir -p "$C" "$TEST_TMP/poolfs/c$n_case" "$TEST_TMP/guestfs/c$n_case"
	V=("$VUNIFY" -p "$TEST_TMP/poolfs/c$n_case/pool")
	if [ "$3" = 1 ]; then HB=$TEST_TMP/poolfs/c$n_case; else HB=$TEST_TMP/guestfs/c$n_case; fi
	assert_ok "${V[@]}" init --layout "$2"
}

# addguest NAME [TREE]: register NAME with a copy of TREE (a fresh mktree).
addguest() {
	local tree=${2:-$C/tree.$1}
	[ -n "${2:-}" ] || mktree "$tree"
	assert_ok "${V[@]}" add "$1" "$HB/$1" --from "$tree"
}

# objects_with_ino DEV:INO: object files of the case's pool with that inode.
objects_with_ino() {
	find "$TEST_TMP/poolfs/c$n_case/pool/objects" -type f -printf '%D:%i %p\n' | awk -v k="$1" '$1 == k { print $2 }'
}

# upper_objects HOME: upper files that are also pool objects (one inode).
upper_objects() {
	local k
	find "$1/upper" -type f -printf '%D:%i\n' | sort -u | while read -r k; do
		objects_with_ino "$k"
	done
}

# link_upper_to_object GUEST PATH: hard-link GUEST's upper PATH to the
# object behind guest a's PATH (a unified first, link layout), as an older
# vunify killed between linking an upper file into objects/ and removing
# its upper name left it.
link_upper_to_object() {
	local obj
	obj=$(objects_with_ino "$(stat -c %d:%i "$TEST_TMP/poolfs/c$n_case/pool/roots/a/$2")")
	[ -n "$obj" ] || fatal "no object for a's $2"
	ln -f "$obj" "$HB/$1/upper/$2"
}

# bad_objects: objects whose content is not the hash their name starts with.
bad_objects() {
	local o h
	find "$TEST_TMP/poolfs/c$n_case/pool/objects" -type f | while read -r o; do
		h=$(sha256sum <"$o" | cut -d' ' -f1)
		case ${o##*/} in "$h" | "$h".*) ;; *) echo "$o" ;; esac
	done
}

# run_paused SYSCALL N HOOK CMD...: run CMD under strace with its Nth SYSCALL
# (counted per thread) held for a few seconds at entry; run HOOK while it
# is held.  The status of CMD ends up in PAUSED_RC.  Fails the case when
# CMD never reached that call.
run_paused() {
	local sc=$1 n=$2 hook=$3 spid pid nr i
	shift 3
	nr=$(printf '#include <sys/syscall.h>\nSYS_%s\n' "$sc" | cpp -P | tail -n1)
	strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc:delay_enter=4000000:when=$n" \
		env ASAN_OPTIONS="$NOLEAK" "$@" \
		>"$C/paused.out" 2>"$C/paused.err" &
	spid=$!
	for i in $(seq 1 300); do
		pid=$(pgrep -P "$spid" | head -n1)
		if [ -n "$pid" ] && grep -qs "^$nr " /proc/"$pid"/task/*/syscall; then
			"$hook"
			break
		fi
		sleep 0.01
	done
	[ "$i" != 300 ] || _fail "$* never reached $sc #$n"
	PAUSED_RC=0
	wait "$spid" || PAUSED_RC=$?
}

# ---------------------------------------------------------------------------
# SPEC invariant 6 against mounts vunify's own check did not see.

# after_refusal HOME MAN: the refused unify left the upper as it was.
after_refusal() {
	sed 's/^/  said: /' "$LAST_STDERR"
	manifest "$1/upper" "$C/after.man"
	assert_same_manifest "$2" "$C/after.man" "the refused unify changed nothing in the upper"
	assert_eq "" "$(ls -A "$1/meta" 2>/dev/null)" "nor in the lower layer"
	assert_eq no "$([ -e "$1/meta.img" ] && echo yes || echo no)" "nor wrote a metadata image"
}

newcase guest_mounted_in_another_namespace redirect 0
addguest g
mkdir -p "$C/mnt"
manifest "$HB/g/upper" "$C/before.man"
assert_ok "${V[@]}" mount g "$C/mnt"
# a container runtime's copy: a mount namespace of its own, holding the
# mount.  (A new namespace copies every mount of the host: it drops all
# but the guest's at once, so that it holds no other test's filesystem.)
unshare -m --propagation private sh -c '
	findmnt -rn -o TARGET,FSTYPE | while read -r t fs; do
		case $t in "$1") ;; /var/tmp/* | /tmp/*) echo "$t" ;; *) [ "$fs" = overlay ] && echo "$t" ;; esac
	done | sort -r | while read -r t; do umount -l "$(printf "%b" "$t")" 2>/dev/null; done
	: >"$2"
	exec sleep 600' sh "$C/mnt" "$C/ns.ready" &
ns_pid=$!
defer kill "$ns_pid"
for _ in $(seq 100); do [ -e "$C/ns.ready" ] && break; sleep 0.1; done
[ "$(findmnt -N "$ns_pid" -rn -o TARGET | grep -c "^$TEST_TMP/")" = 1 ] ||
	_fail "the namespace holds exactly the guest's mount of this test"
assert_ok "${V[@]}" umount g
assert_fail_msg "mounted" "${V[@]}" unify g
after_refusal "$HB/g" "$C/before.man"
kill "$ns_pid"
wait "$ns_pid" 2>/dev/null
sleep 0.3
assert_ok "${V[@]}" unify g
assert_eq "" "$(find "$HB/g/upper/usr" -type f)" "once that namespace is gone, unify proceeds"

newcase lazily_unmounted_guest_with_open_fd redirect 0
addguest g
mkdir -p "$C/mnt"
manifest "$HB/g/upper" "$C/before.man"
assert_ok "${V[@]}" mount g "$C/mnt"
sleep 600 <"$C/mnt/etc/demo.conf" &
fd_pid=$!
defer kill "$fd_pid"
sleep 0.2
umount -l "$C/mnt" || _fail "umount -l"
assert_eq "" "$(findmnt -n "$C/mnt")" "the guest is detached: no mount table shows it"
assert_fail_msg "mounted" "${V[@]}" unify g
after_refusal "$HB/g" "$C/before.man"
kill "$fd_pid"
wait "$fd_pid" 2>/dev/null

newcase guest_mounted_through_a_bind_mount redirect 0
addguest g
mkdir -p "$C/mnt" "$C/alias"
manifest "$HB/g/upper" "$C/before.man"
assert_ok "${V[@]}" mount g "$C/mnt"
opts=$(findmnt -n -o OPTIONS "$C/mnt")
assert_ok "${V[@]}" umount g
# the same layers, spelled through a bind mount of the guests' filesystem
mount --bind "$TEST_TMP/guestfs" "$C/alias" || _fail "bind mount"
mount -t overlay vunify -o "${opts//$TEST_TMP\/guestfs/$C/alias}" "$C/mnt" || _fail "mount through the alias"
assert_fail_msg "mounted" "${V[@]}" unify g
after_refusal "$HB/g" "$C/before.man"
umount "$C/mnt"
umount "$C/alias"

# ---------------------------------------------------------------------------
# Per-file checks: an upper file edited in place after it was hashed keeps
# its inode, size and mtime (restored); only its ctime tells.  The pool
# already holds its old content, so nothing else re-reads it.
newcase file_edited_between_hash_and_removal redirect 0
mktree "$C/tree"
addguest a "$C/tree"
addguest b "$C/tree"
assert_ok "${V[@]}" unify a
edit_in_place() {
	local f=$HB/b/upper/usr/lib/libdemo.so
	printf 'EDITED' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
	touch -d '2024-01-02 03:04:05' "$f"
}
# the first syncfs of unify b: after hashing, before the store
run_paused syncfs 1 edit_in_place "${V[@]}" unify b
assert_eq 0 "$PAUSED_RC" "unify b ran"
mkdir -p "$C/mnt"
assert_ok "${V[@]}" mount b "$C/mnt"
assert_eq EDITED "$(dd if="$C/mnt/usr/lib/libdemo.so" bs=1 skip=100 count=6 status=none | tr -c A-Z .)" \
	"the guest's edit made after hashing is still what it sees"
assert_ok "${V[@]}" umount b

# A whiteout the scan folded, replaced by a real file before its removal
# (the guest deleted a file, then created it again): the file stays.
newcase file_recreated_at_a_whiteout_path redirect 0
addguest g
assert_ok "${V[@]}" unify g
mkdir -p "$HB/g/upper/etc" # unify may have moved it to the lower layer (lib/prune.h)
mknod "$HB/g/upper/etc/demo.conf" c 0 0
recreate() {
	rm "$HB/g/upper/etc/demo.conf"
	echo recreated >"$HB/g/upper/etc/demo.conf"
}
# the first syncfs: the scan removed the lower entry, the whiteout is next
run_paused syncfs 1 recreate "${V[@]}" unify g
assert_eq 0 "$PAUSED_RC" "unify ran"
mkdir -p "$C/mnt"
assert_ok "${V[@]}" mount g "$C/mnt"
assert_eq recreated "$(cat "$C/mnt/etc/demo.conf" 2>&1)" "the file recreated at the whiteout's path is kept"
assert_ok "${V[@]}" umount g

# ---------------------------------------------------------------------------
# Link layout, pool and uppers on one filesystem: half-adopted files.

# An older vunify killed after linking an upper file into objects/ and
# before removing its upper name left the upper file hard-linked to an
# object (made here by hand: the object of b's identical file).
newcase upper_file_hard_linked_to_an_object link 1
mktree "$C/tree"
addguest a "$C/tree"
addguest b "$C/tree"
assert_ok "${V[@]}" unify a
link_upper_to_object b usr/bin/tool
assert_ok "${V[@]}" unify b
assert_eq "" "$(upper_objects "$HB/b")" "after the re-run no upper file of b is a pool object"
mkdir -p "$C/ma" "$C/mb"
assert_ok "${V[@]}" mount a "$C/ma"
assert_ok "${V[@]}" mount b "$C/mb"
manifest "$C/ma" "$C/a.before.man" --no-ino
echo "written by b" >>"$C/mb/usr/bin/tool"
manifest "$C/ma" "$C/a.after.man" --no-ino
assert_same_manifest "$C/a.before.man" "$C/a.after.man" "a write through b does not reach a"
assert_eq "" "$(bad_objects)" "every object still holds the content its name says"
assert_ok "${V[@]}" umount a
assert_ok "${V[@]}" umount b

# The same, but the guest wrote through the shared inode before the re-run:
# the object no longer holds what its name says and must not be handed out.
newcase object_written_through_before_rerun link 1
mktree "$C/tree"
addguest a "$C/tree"
addguest b "$C/tree"
assert_ok "${V[@]}" unify a
link_upper_to_object b usr/lib/libdemo.so
printf 'EVIL' | dd of="$HB/b/upper/usr/lib/libdemo.so" bs=1 seek=10 conv=notrunc status=none
cp "$HB/b/upper/usr/lib/libdemo.so" "$C/b.expected"
assert_ok "${V[@]}" unify b
assert_eq "" "$(upper_objects "$HB/b")" "after the re-run no upper file of b is a pool object"
assert_eq "" "$(bad_objects)" "no object name is left on content that is not its hash"
mkdir -p "$C/mb"
assert_ok "${V[@]}" mount b "$C/mb"
assert_ok cmp "$C/b.expected" "$C/mb/usr/lib/libdemo.so"
assert_ok "${V[@]}" umount b

# The same, with a guest holding that very file unified in the same run,
# before the writer: while the object still has its wrong name, no file may
# be linked to it (the misnamed object goes before the store threads start).
newcase misnamed_object_dropped_before_any_link link 1
mktree "$C/tree"
addguest a "$C/tree"
addguest c "$C/tree"
addguest w "$C/tree"
assert_ok "${V[@]}" unify a
link_upper_to_object w usr/lib/libdemo.so
printf 'EVIL' | dd of="$HB/w/upper/usr/lib/libdemo.so" bs=1 seek=10 conv=notrunc status=none
# one thread: c's files are stored before w's
assert_ok "${V[@]}" unify --jobs 1 c w
assert_eq "" "$(bad_objects)" "no object name is left on content that is not its hash"
mkdir -p "$C/mc"
assert_ok "${V[@]}" mount c "$C/mc"
assert_ok cmp "$C/tree/usr/lib/libdemo.so" "$C/mc/usr/lib/libdemo.so"
assert_ok "${V[@]}" umount c

# kill -9 at every syncfs of a same-filesystem link-layout unify: after
# each, no upper file may share its inode with an object, every view is
# intact, and a re-run finishes the work.
killed=0 mid=0
for k in 1 2 3 4 5 6 7 8 9 10; do
	newcase "kill_9_during_same_fs_link_adoption (syncfs #$k)" link 1
	mktree "$C/tree"
	addguest a "$C/tree"
	addguest b "$C/tree"
	rc=0
	strace -f -qq -o /dev/null -e trace=syncfs -e inject="syncfs:signal=SIGKILL:when=$k" \
		env ASAN_OPTIONS="$NOLEAK" "${V[@]}" unify a b >/dev/null 2>&1 || rc=$?
	[ "$rc" = 0 ] && break
	killed=$((killed + 1))
	# an upper file with a second name (mid-adoption): the window tested
	[ -n "$(find "$HB/a/upper" "$HB/b/upper" -type f -links +1)" ] && mid=$((mid + 1))
	assert_eq "" "$(upper_objects "$HB/a")$(upper_objects "$HB/b")" \
		"killed at syncfs #$k: no upper file is a pool object"
	assert_ok "${V[@]}" unify a b
	assert_eq "" "$(find "$HB/a/upper/usr" "$HB/b/upper/usr" -type f)" "the re-run finished the work"
	mkdir -p "$C/ma" "$C/mb"
	assert_ok "${V[@]}" mount a "$C/ma"
	assert_ok "${V[@]}" mount b "$C/mb"
	manifest "$C/ma" "$C/a.man" --no-ino
	manifest "$C/tree" "$C/src.man" --no-ino
	assert_same_manifest "$C/src.man" "$C/a.man" "a's view is intact"
	echo "written by a" >>"$C/ma/usr/bin/tool"
	echo "written by a" >>"$C/ma/usr/lib/libdemo.so"
	manifest "$C/mb" "$C/b.man" --no-ino
	assert_same_manifest "$C/src.man" "$C/b.man" "writes through a do not reach b"
	assert_ok "${V[@]}" umount a
	assert_ok "${V[@]}" umount b
	assert_eq "" "$(bad_objects)" "every object holds the content its name says"
done
[ "$killed" -ge 2 ] || _fail "only $killed kills landed mid-command"
[ "$mid" -ge 1 ] || _fail "no kill landed while an upper file had a second name (mid-adoption)"

# kill -9 around the redirect layout's image rename and the upper-side steps
# after it (lib/store.c, finish_lower): at each rename, fsync, unlink and
# syncfs of a same-filesystem unify (adoptions) of a guest that ran (a
# whiteout, an opaque directory, a changed file) and a new one.  After each:
# both views intact, no stubs on disk beside an image, fsck clean, and a
# re-run finishes the work.
killed=0 after_image=0
for point in renameat:1 renameat:2 renameat:3 fsync:1 fsync:2 fsync:3 fsync:4 unlinkat:1 unlinkat:2 unlinkat:3 unlinkat:5 \
	syncfs:2 syncfs:3 syncfs:4 syncfs:5 syncfs:6; do
	sc=${point%:*} k=${point#*:}
	newcase "kill_9_around_the_image_rename ($point)" redirect 1
	mktree "$C/tree"
	addguest a "$C/tree"
	assert_ok "${V[@]}" unify a
	mkdir -p "$C/ma"
	assert_ok "${V[@]}" mount a "$C/ma"
	rm "$C/ma/usr/bin/other"
	rm -rf "$C/ma/var/log" && mkdir "$C/ma/var/log" && echo new >"$C/ma/var/log/new.log"
	echo changed >>"$C/ma/etc/demo.conf"
	cp -a "$C/ma/usr/lib/libdemo.so" "$C/ma/usr/lib/libdemo2.so"
	manifest "$C/ma" "$C/a.exp"
	assert_ok "${V[@]}" umount a
	addguest b "$C/tree"
	manifest "$C/tree" "$C/b.exp"
	img0=$(stat -c %i "$HB/a/meta.img")
	rc=0
	strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc:signal=SIGKILL:when=$k" \
		env ASAN_OPTIONS="$NOLEAK" "${V[@]}" unify a b >/dev/null 2>&1 || rc=$?
	[ "$rc" != 0 ] && killed=$((killed + 1))
	[ "$rc" != 0 ] && [ "$(stat -c %i "$HB/a/meta.img")" != "$img0" ] && after_image=$((after_image + 1))
	for g in a b; do
		[ -e "$HB/$g/meta" ] && [ -e "$HB/$g/meta.img" ] && [ "$rc" = 0 ] && _fail "$point: $g has stubs beside its image"
		mkdir -p "$C/m$g"
		assert_ok "${V[@]}" mount "$g" "$C/m$g"
		manifest "$C/m$g" "$C/$g.now"
		assert_same_manifest "$C/$g.exp" "$C/$g.now" "killed at $point (rc $rc): $g's view intact"
		assert_ok "${V[@]}" umount "$g"
	done
	assert_status 0 "${V[@]}" fsck
	assert_ok "${V[@]}" unify a b
	assert_eq "" "$(find "$HB/b/upper/usr" -type f)" "$point: the re-run finished the work"
	assert_eq "" "$(find "$HB/a/upper" -type c)" "$point: the re-run folded the whiteout"
	[ ! -e "$HB/a/meta" ] && [ ! -e "$HB/b/meta" ] || _fail "$point: stubs left on disk"
	for g in a b; do
		assert_ok "${V[@]}" mount "$g" "$C/m$g"
		manifest "$C/m$g" "$C/$g.now"
		assert_same_manifest "$C/$g.exp" "$C/$g.now" "$point, re-run: $g's view"
		assert_ok "${V[@]}" umount "$g"
	done
	assert_status 0 "${V[@]}" fsck
	assert_eq "" "$(bad_objects)" "every object holds the content its name says"
done
echo "image-order kills: $killed landed, $after_image after the image rename"
[ "$killed" -ge 8 ] || _fail "only $killed kills landed mid-command"
[ "$after_image" -ge 3 ] || _fail "only $after_image kills landed after the image rename"

# ---------------------------------------------------------------------------
# A path swapped between the scan's stat and the hash's open: a FIFO whose
# writer is blocked in open(2) tells whether vunify opened it (a device node
# would have been opened the same way, e.g. a watchdog that then fires).
newcase fifo_swapped_in_before_open redirect 0
addguest g
swap_for_fifo() {
	rm "$HB/g/upper/usr/bin/other"
	mkfifo "$HB/g/upper/usr/bin/other"
	(
		exec 3>"$HB/g/upper/usr/bin/other"
		echo opened >"$C/fifo.opened"
	) &
	fifo_writer=$!
	sleep 0.2
}
# one guest, two jobs: the scan runs on the main thread, the hash phase
# starts the first thread (clone3)
run_paused clone3 1 swap_for_fifo "${V[@]}" unify --jobs 2 g
assert_eq 0 "$PAUSED_RC" "unify ran"
assert_eq no "$([ -e "$C/fifo.opened" ] && echo yes || echo no)" "the FIFO swapped in was never opened"
kill "$fifo_writer" 2>/dev/null
wait "$fifo_writer" 2>/dev/null

# ---------------------------------------------------------------------------
# A read error while hashing (a bad sector under one upper file): unify
# fails naming the file and the error; it is not "the file changed".
newcase eio_while_hashing redirect 0
# btrfs checksums data: bytes changed behind its back read as EIO
img=$TEST_TMP/eio.img
truncate -s 256M "$img"
mkfs.btrfs -q -f "$img" >/dev/null || fatal "mkfs.btrfs"
mkdir -p "$C/eiofs"
mount -o loop "$img" "$C/eiofs" || fatal "mount btrfs"
defer umount_quiet "$C/eiofs"
mktree "$C/tree"
yes VUNIFY-EIO-MARK | head -c 200000 >"$C/tree/usr/lib/libbad.so"
assert_ok "${V[@]}" add g "$C/eiofs/g" --from "$C/tree"
umount "$C/eiofs" || fatal "umount btrfs"
off=$(grep -obUa -m1 VUNIFY-EIO-MARK "$img" | head -n1 | cut -d: -f1)
[ -n "$off" ] || fatal "marker not found in the image"
printf 'XXXXXXXX' | dd of="$img" bs=1 seek="$off" conv=notrunc status=none
mount -o loop "$img" "$C/eiofs" || fatal "mount btrfs again"
if cat "$C/eiofs/g/upper/usr/lib/libbad.so" >/dev/null 2>&1; then
	fatal "the damaged file still reads"
fi
assert_fail_msg "libbad\.so.*Input/output error" "${V[@]}" unify g
umount "$C/eiofs"
