#!/bin/bash
# SPEC invariant 7 under kill -9: replicated unify and replicate are killed
# at random instants on host A; after each kill the guest fails over to
# host B (its partition detached from A, attached on B), B adopts it,
# mounts it, and must show exactly what the guest showed on A before the
# command (full manifest, dpkg --verify inside); then it fails back and the
# next unify on A finishes the work.  Redirect layout; LAYOUT=link (t63)
# the link layout, whose pruned directories and symlinks come back on B
# from HOME/vunify-lower alone.
#
# Each round changes the guest through its mount on A (new content, copies
# of shared content, deletions, a chmod), then either kills a replicated
# unify, or unifies with --no-replicas (so that there is something to
# replicate) and kills replicate.  Kill delays are uniform in [0, 1.2 D],
# D the duration of an unkilled round's command.  The whole process group
# is killed (vunify, and the rsync and ssh it runs), as a crash of A would.
# The test fails unless at least 6 kills landed mid-command, and prints
# its seed (VUNIFY_CRASH_SEED=S replays the same delays and changes).
# shellcheck source-path=SCRIPTDIR disable=SC1091
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-twohost.sh"

export VUNIFY_RSYNC_TIMEOUT=10
need_root
need_cmd chroot setsid
need_bin "$VUNIFY" "$MANIFEST"
twohost_start

LAYOUT=${LAYOUT:-redirect}
mopt=()
[ "$LAYOUT" = link ] && mopt=(--no-ino)
seed_random
want_landed=6
max_rounds=${VUNIFY_CRASH_ROUNDS:-16}

tree=$("$TOP/scripts/debian-trees.sh" bookworm-minbase) || fatal "debian-trees.sh failed"
mkfs_loop 2G ext4 "$TEST_TMP/a"
A_POOL=$TEST_TMP/a/pool
VA=("$VUNIFY" -p "$A_POOL")
truncate -s 2G "$TEST_TMP/b.img" && mkfs.ext4 -q "$TEST_TMP/b.img" || fatal "mkfs b.img"
attach_b "$TEST_TMP/b.img" "$TEST_TMP/b" || fatal "attach b.img on B"
B_POOL=$TEST_TMP/b/pool
VB=("$VUNIFY" -p "$B_POOL")
G1_IMG=$TEST_TMP/g1.img
G1_FS=$TEST_TMP/g1fs
H1=$G1_FS/home
truncate -s 2G "$G1_IMG" && mkfs.ext4 -q -I 512 "$G1_IMG" || fatal "mkfs g1.img"
attach_a "$G1_IMG" "$G1_FS" || fatal "attach g1 on A"
M=$TEST_TMP/mnt
mkdir -p "$M"
assert_ok "${VA[@]}" init --layout "$LAYOUT" || exit 1
assert_ok on_b "${VB[@]}" init --layout "$LAYOUT" || exit 1
assert_ok "${VA[@]}" replica add "$B_HOST:$B_POOL" || exit 1
assert_ok "${VA[@]}" add g1 "$H1" --from "$tree" || exit 1
manifest "$tree" "$TEST_TMP/src.man" "${mopt[@]}" || exit 1
mapfile -t usrfiles < <(awk '$2 == "file" && $1 ~ /^\/usr\/[A-Za-z0-9\/._+-]+$/ { print substr($1, 2) }' "$TEST_TMP/src.man")
copy_dirs=(usr/share/perl5 usr/lib/x86_64-linux-gnu/perl-base usr/share/zoneinfo usr/bin usr/share/locale)

a_to_b() { detach_a "$G1_FS" && attach_b "$G1_IMG" "$G1_FS" || fatal "fail g1 over to B"; }
b_to_a() { detach_b "$G1_FS" && attach_a "$G1_IMG" "$G1_FS" || fatal "fail g1 back to A"; }

# change ROUND: random changes through g1's mount on A; exp.man is its view
change() {
	local i=$1 k p
	must "${VA[@]}" mount g1 "$M" || return 1
	rm -rf "$M"/opt/copy.* "$M"/usr/local/lib/fo.*
	mkdir -p "$M/usr/local/lib/fo.$i" "$M/opt/copy.$i"
	for ((k = 0; k < 40; k++)); do
		rnd 65536
		head -c $((R + 1)) /dev/urandom >"$M/usr/local/lib/fo.$i/f$k"
	done
	rnd ${#copy_dirs[@]}
	cp -a "$M/${copy_dirs[R]}" "$M/opt/copy.$i/" || _fail "cp ${copy_dirs[R]}"
	for k in 1 2 3; do
		rnd ${#usrfiles[@]}
		rm -f "$M/${usrfiles[R]}"
	done
	rnd ${#usrfiles[@]}
	p=$M/${usrfiles[R]}
	[ -f "$p" ] && chmod o-r "$p"
	manifest "$M" "$TEST_TMP/exp.man" "${mopt[@]}"
	must "${VA[@]}" umount g1
}

# kill_run DURATION_MS CMD...: run CMD in a process group of its own, kill
# the group with SIGKILL after a random delay in [0, 1.2 DURATION_MS].
landed=0
kills=0
kill_run() {
	local dur=$1 pid ms s rc=0
	shift
	rnd $((dur * 6 / 5 + 1))
	ms=$R
	printf -v s '%d.%03d' $((ms / 1000)) $((ms % 1000))
	setsid "$@" >"$TEST_TMP/kill.out" 2>"$TEST_TMP/kill.err" &
	pid=$!
	sleep "$s"
	kill -9 -- -"$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || rc=$?
	kills=$((kills + 1))
	if [ "$rc" = 137 ]; then
		landed=$((landed + 1))
		KILL_DESC="${!#} killed after $ms ms (mid-command)"
	else
		KILL_DESC="${!#} killed after $ms ms (had ended, exit $rc)"
		[ "$rc" = 0 ] || { _fail "$KILL_DESC on its own"; _show "$TEST_TMP/kill.err" stderr; }
	fi
	echo "# $KILL_DESC"
}

# failover WHEN: g1 on B shows exp.man; then back on A
failover() {
	a_to_b
	if must on_b "${VB[@]}" adopt g1 "$H1"; then
		if must on_b "${VB[@]}" mount g1 "$M"; then
			on_b "$MANIFEST" "${mopt[@]}" "$M" >"$TEST_TMP/b.man" || _fail "manifest on B"
			must on_b chroot "$M" dpkg --verify && _pass "$1: dpkg --verify on B"
			must on_b "${VB[@]}" umount g1
			assert_same_manifest "$TEST_TMP/exp.man" "$TEST_TMP/b.man" "$1: view on B is the view on A"
		fi
	else
		_fail "$1: B cannot adopt the guest (invariant 7)"
	fi
	b_to_a
	must "${VA[@]}" adopt g1 "$H1" || _fail "$1: A cannot take the guest back"
}

echo "== first unify (replicated), and one unkilled round to time it"
assert_ok "${VA[@]}" unify || exit 1
change 0
t0=${EPOCHREALTIME//[!0-9]/}
assert_ok "${VA[@]}" unify || exit 1
d_unify=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
change 1
assert_ok "${VA[@]}" unify --no-replicas || exit 1
t0=${EPOCHREALTIME//[!0-9]/}
assert_ok "${VA[@]}" replicate || exit 1
d_repl=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
echo "unify round: $d_unify ms, replicate round: $d_repl ms"
failover "round 1"

for ((i = 2; i < max_rounds && landed < want_landed; i++)); do
	change "$i"
	if ((i % 3)); then
		kill_run "$d_unify" "${VA[@]}" unify
		w="round $i: $KILL_DESC"
	else
		must "${VA[@]}" unify --no-replicas
		kill_run "$d_repl" "${VA[@]}" replicate
		w="round $i: $KILL_DESC"
		# a killed replicate leaves nothing torn named on B
		must on_b "${VB[@]}" fsck && _pass "$w: fsck on B clean"
		must "${VA[@]}" replicate
	fi
	failover "$w"
	# the next unify finishes the work
	must "${VA[@]}" unify && _pass "$w: re-run of unify"
	must "${VA[@]}" mount g1 "$M" && manifest "$M" "$TEST_TMP/a.man" "${mopt[@]}"
	must "${VA[@]}" umount g1
	assert_same_manifest "$TEST_TMP/exp.man" "$TEST_TMP/a.man" "$w: view on A after the re-run"
	left=$(find "$H1/upper/usr/local/lib" -type f -size +0c | head -3)
	[ -z "$left" ] && _pass "$w: re-run unified the new files" || _fail "$w: left in the upper: $left"
done
echo "kills: $kills, landed mid-command: $landed (seed $seed)"
[ "$landed" -ge "$want_landed" ] && _pass "$landed kills landed mid-command" ||
	_fail "only $landed of $kills kills landed mid-command (need $want_landed; seed $seed)"
