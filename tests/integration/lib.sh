# shellcheck shell=bash
# Shared helpers for tests/integration/tNN-*.sh.  Source it first:
#
#   . "$(dirname "$0")/lib.sh"
#   need_root
#   mkfs_loop 1G ext4 "$TEST_TMP/guests"
#   assert_ok "$VUNIFY" -p "$TEST_TMP/pool" init
#
# A test is a bash script; it passes when it exits 0 with no failed
# assertion, is skipped when it exits 77, fails otherwise.  run.sh gives
# each test a fresh $TEST_TMP; run alone, a test makes (and removes) its own.
# Everything the test mounts must live under $TEST_TMP: on exit every mount
# under it (and every overlay whose options name it) is unmounted, then the
# cleanup stack (defer) runs in reverse, so a failed test leaves nothing
# mounted.
#
# Variables: TOP (the source tree), VUNIFY (build/vunify or $VUNIFY),
# MANIFEST (build/tools/manifest or $MANIFEST), TEST_NAME, TEST_TMP,
# LAST_STDOUT / LAST_STDERR (files holding the last assert_* command's
# output).

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VUNIFY=${VUNIFY:-$TOP/build/vunify}
MANIFEST=${MANIFEST:-$TOP/build/tools/manifest}
TEST_NAME=$(basename "$0" .sh)
export TOP VUNIFY MANIFEST TEST_NAME

_PASSES=0
_FAILS=0
_CLEANUP=()
_OWN_TMP=
if [ -z "${TEST_TMP:-}" ]; then
	TEST_TMP=$(mktemp -d /var/tmp/vunify-test.XXXX) || exit 1
	_OWN_TMP=1
fi
export TEST_TMP
LAST_STDOUT=$TEST_TMP/.last.out
LAST_STDERR=$TEST_TMP/.last.err
# The vunify under test must not touch the host's default pool.
export VUNIFY_POOL=$TEST_TMP/pool

# ---- skipping and failing ---------------------------------------------

# skip REASON: end the test as skipped (exit 77); under CI=true a skip is a
# failure, since CI must run everything.
skip() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $TEST_NAME: $1 (CI=true: skipping not allowed)"
		_FAILS=$((_FAILS + 1))
		exit 1
	fi
	echo "SKIP: $TEST_NAME: $1"
	exit 77
}

need_root() {
	[ "$(id -u)" = 0 ] || skip "needs root (loop devices, overlayfs)"
}

# need_cmd CMD...: skip unless every CMD is on PATH.
need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs $c"
	done
}

# need_bin PATH...: a missing build product is a failure, not a skip.
need_bin() {
	local b
	for b in "$@"; do
		[ -x "$b" ] || fatal "$b not built (run make)"
	done
}

# fatal MSG: count a failure and end the test now.
fatal() {
	_say "FAIL - $*"
	_FAILS=$((_FAILS + 1))
	exit 1
}

# ---- cleanup stack --------------------------------------------------------

# defer CMD ARGS...: run CMD at exit (last deferred runs first); errors are
# ignored.
defer() {
	_CLEANUP+=("$(printf '%q ' "$@")")
}

# umount_quiet DIR: unmount DIR if it is a mount point (lazily if busy).
umount_quiet() {
	mountpoint -q "$1" 2>/dev/null || return 0
	umount "$1" 2>/dev/null || umount -l "$1"
}

# umount_under DIR...: unmount everything mounted at or below each DIR, and
# every overlay whose options name DIR, deepest first.
umount_under() {
	local d m round
	for round in 1 2 3 4 5; do
		m=$(
			for d in "$@"; do
				findmnt -rn -o TARGET | while read -r t; do
					t=$(printf '%b' "$t") # findmnt escapes as \x20
					case $t in "$d" | "$d"/*) echo "$t" ;; esac
				done
				findmnt -rn -t overlay -o TARGET,OPTIONS | while read -r t o; do
					case $o in *"$d"*) printf '%b\n' "$t" ;; esac
				done
			done | awk '{ print length($0) "\t" $0 }' | sort -rn -u | cut -f2-
		)
		[ -n "$m" ] || return 0
		while IFS= read -r d; do
			umount "$d" 2>/dev/null || umount -l "$d" 2>/dev/null
		done <<<"$m"
		[ "$round" = 5 ] && echo "warning: still mounted: $m" >&2
	done
	return 0
}

# lower_open HOME: a directory showing the redirect layout's record of the
# guest whose home is HOME: its metadata image mounted read-only (the
# record: docs/FORMAT.md), or HOME/meta where there is no image (an older
# pool, or stubs an online switch left).  lower_close DIR when done.
lower_open() {
	local d
	if [ -f "$1/meta.img" ]; then
		d=$(mktemp -d "$TEST_TMP/lower.XXXXXX") || return 1
		mount -t erofs -o ro "$1/meta.img" "$d" || { rmdir "$d"; return 1; }
		echo "$d"
	else
		echo "$1/meta"
	fi
}
lower_close() {
	case $1 in "$TEST_TMP"/lower.*) umount "$1" && rmdir "$1" ;; esac
}

_run_cleanup() {
	local i
	umount_under "$TEST_TMP"
	for ((i = ${#_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${_CLEANUP[i]}" >/dev/null 2>&1 || true
	done
	_CLEANUP=()
	if [ -n "$_OWN_TMP" ]; then
		rm -rf --one-file-system "$TEST_TMP"
	fi
}

_on_exit() {
	local rc=$?
	trap - EXIT
	_run_cleanup
	if [ "$rc" != 77 ]; then
		[ "$_FAILS" -gt 0 ] && rc=1
		echo "$TEST_NAME: $_PASSES passed, $_FAILS failed"
	fi
	exit "$rc"
}
trap _on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- filesystems ------------------------------------------------------------

# mkfs_loop SIZE FSTYPE DIR: mount a fresh filesystem of SIZE (truncate(1)
# syntax: 512M, 4G) on DIR (created if missing).  FSTYPE is ext4 (journal
# kept), xfs (SIZE at least 300M), btrfs, or tmpfs (no image).  The image is
# a sparse file in $TEST_TMP; unmount and loop detach are deferred.  ext4
# leaves a lost+found: manifests of the mount root want --skip lost+found.
# shellcheck disable=SC2206 # MKFS_EXT4_OPTS is a list of options
mkfs_loop() {
	local size=$1 fstype=$2 dir=$3 img dev
	local -a mkfs
	mkdir -p "$dir" || fatal "mkdir '$dir'"
	case $fstype in
	tmpfs)
		mount -t tmpfs -o "size=$size,mode=0755" tmpfs "$dir" || fatal "mount tmpfs on '$dir'"
		defer umount_quiet "$dir"
		return 0
		;;
	ext4) mkfs=(mkfs.ext4 -q -F ${MKFS_EXT4_OPTS:-}) ;;
	xfs) mkfs=(mkfs.xfs -q -f) ;;
	btrfs) mkfs=(mkfs.btrfs -q -f) ;;
	*) fatal "mkfs_loop: unknown filesystem '$fstype'" ;;
	esac
	need_cmd "${mkfs[0]}" losetup
	img=$(mktemp "$TEST_TMP/$fstype.XXXX.img") || fatal "mktemp image"
	truncate -s "$size" "$img" || fatal "truncate '$img'"
	"${mkfs[@]}" "$img" >"$TEST_TMP/.mkfs.log" 2>&1 || fatal "${mkfs[*]} '$img': $(cat "$TEST_TMP/.mkfs.log")"
	dev=$(losetup --find --show "$img") || fatal "losetup '$img'"
	defer losetup -d "$dev"
	mount "$dev" "$dir" || fatal "mount $dev ($fstype) on '$dir'"
	defer umount_quiet "$dir"
}

# ---- randomized runs --------------------------------------------------------

# seed_random: seed bash's RANDOM with VUNIFY_CRASH_SEED, or else the clock,
# and print it; sets seed too.  The same seed replays the same run.
seed_random() {
	seed=${VUNIFY_CRASH_SEED:-$(($(date +%s) % 32768))}
	RANDOM=$seed
	echo "seed: $seed (replay with VUNIFY_CRASH_SEED=$seed)"
}

# rnd N: R = a random integer in [0, N).  Call it in the main shell only
# (never in $(...)), so the sequence is the seed's.
# shellcheck disable=SC2034 # R is the caller's
rnd() { R=$(((RANDOM * 32768 + RANDOM) % $1)); }

# ---- assertions --------------------------------------------------------------

# Messages are cut at 300 bytes a line: hostile names are long.
_say() {
	printf '%s\n' "$*" | cut -b 1-300
}

_pass() {
	_PASSES=$((_PASSES + 1))
	_say "ok - $*"
}

_fail() {
	_FAILS=$((_FAILS + 1))
	_say "FAIL - $*"
}

# _show FILE LABEL: print the first lines of FILE, indented.
_show() {
	[ -s "$1" ] || return 0
	echo "  $2:"
	head -n 20 "$1" | cut -b 1-300 | sed 's/^/    /'
}

# assert_eq EXPECTED ACTUAL [DESC]
assert_eq() {
	if [ "$1" = "$2" ]; then
		_pass "${3:-"'$2'"}"
	else
		_fail "${3:-value}: expected '$1', got '$2'"
	fi
}

# assert_ok CMD ARGS...: CMD must exit 0.  Its output stays in LAST_STDOUT
# and LAST_STDERR.  Returns CMD's status, so "assert_ok ... || exit" works.
assert_ok() {
	local rc=0
	"$@" >"$LAST_STDOUT" 2>"$LAST_STDERR" || rc=$?
	if [ "$rc" = 0 ]; then
		_pass "$*"
	else
		_fail "$* (exit $rc)"
		_show "$LAST_STDERR" stderr
	fi
	return "$rc"
}

# must CMD ARGS...: as assert_ok, but only a failure is reported (for the
# many steps of a randomized run, whose passes would drown the log).
must() {
	local rc=0
	"$@" >"$LAST_STDOUT" 2>"$LAST_STDERR" || rc=$?
	[ "$rc" = 0 ] && return 0
	_fail "$* (exit $rc)"
	_show "$LAST_STDERR" stderr
	return "$rc"
}

# assert_status CODE CMD ARGS...: CMD must exit with exactly CODE.
assert_status() {
	local want=$1 rc=0
	shift
	"$@" >"$LAST_STDOUT" 2>"$LAST_STDERR" || rc=$?
	if [ "$rc" = "$want" ]; then
		_pass "$* (exit $rc)"
		return 0
	fi
	_fail "$*: expected exit $want, got $rc"
	_show "$LAST_STDERR" stderr
	return 1
}

# assert_fail CMD ARGS...: CMD must exit non-zero (and not crash on a
# signal: 128+N is a failure, so must-fail checks catch sanitizer aborts).
assert_fail() {
	local rc=0
	"$@" >"$LAST_STDOUT" 2>"$LAST_STDERR" || rc=$?
	if [ "$rc" != 0 ] && [ "$rc" -lt 128 ]; then
		_pass "fails: $* (exit $rc)"
		return 0
	fi
	_fail "$*: expected a clean failure, got exit $rc"
	_show "$LAST_STDERR" stderr
	return 1
}

# assert_fail_msg REGEX CMD ARGS...: CMD must exit non-zero (below 128) and
# its stderr must match the extended regex REGEX.
assert_fail_msg() {
	local re=$1 rc=0
	shift
	"$@" >"$LAST_STDOUT" 2>"$LAST_STDERR" || rc=$?
	if [ "$rc" = 0 ] || [ "$rc" -ge 128 ]; then
		_fail "$*: expected a clean failure, got exit $rc"
		_show "$LAST_STDERR" stderr
		return 1
	fi
	if ! grep -Eq -- "$re" "$LAST_STDERR"; then
		_fail "$*: stderr does not match /$re/"
		_show "$LAST_STDERR" stderr
		return 1
	fi
	_pass "fails with /$re/: $*"
}

# manifest DIR OUT [OPTS...]: write the manifest of DIR to OUT (options as
# build/tools/manifest: --no-ino, --skip PATH).  A manifest that cannot be
# taken is a failure (returns 1).
manifest() {
	local dir=$1 out=$2
	shift 2
	if ! "$MANIFEST" "$@" "$dir" >"$out" 2>"$out.err"; then
		_fail "manifest '$dir': $(cat "$out.err")"
		return 1
	fi
	rm -f "$out.err"
}

# assert_same_manifest A B [DESC]: two manifest files must be equal; shows
# the first lines of the difference.
assert_same_manifest() {
	if cmp -s "$1" "$2"; then
		_pass "${3:-same manifest: $1 $2}"
		return 0
	fi
	_fail "${3:-manifests differ: $1 $2}"
	diff -u "$1" "$2" | sed -n '3,42p' | cut -b 1-300 | sed 's/^/    /'
	return 1
}

# assert_same_tree DIR1 DIR2 [OPTS...]: the two trees must look the same to
# a reader (manifest with OPTS).
assert_same_tree() {
	local a=$1 b=$2 n
	shift 2
	n=$(mktemp "$TEST_TMP/.manifest.XXXX")
	manifest "$a" "$n.a" "$@" || return 1
	manifest "$b" "$n.b" "$@" || return 1
	assert_same_manifest "$n.a" "$n.b" "same tree: $a $b"
}
