# shellcheck shell=bash
# Body of t40/t41: SPEC invariant 3 (nothing lost), in the layout $LAYOUT.
# Sourced by the tNN scripts after lib.sh.
#
# add --from, unify, gc, export and remove are killed with SIGKILL at
# random instants.  After every kill every guest's whole view (mounted,
# full manifest; --no-ino for the link layout) must equal what it was,
# fsck must exit 0 (what an interrupted command leaves behind is for the
# next writer to clean, not a problem), and re-running the command must
# finish the work.  Each command's typical duration D is measured on an
# uninterrupted run first; kill delays are drawn uniformly in [0, 1.2 D].
# A kill "landed mid-command" when the command was still running (its
# wait status is 137).
#
# Replay: the log starts with "seed: S"; VUNIFY_CRASH_SEED=S repeats the
# same delays and guest changes (where a kill lands still depends on
# timing).  VUNIFY_CRASH_ITER=N: N rounds of changes and killed unify runs
# (default 20), and about N/3 of each other command (plus as many more
# killed unify runs of a whole plain tree, before each remove).
#
# A kill -9 loses no page cache: this checks the order of the visible
# steps, not durability against a power cut.

need_root
need_cmd jq
need_bin "$VUNIFY" "$MANIFEST"

seed_random
n_unify=${VUNIFY_CRASH_ITER:-20}
n_other=$(((n_unify + 2) / 3))
t_start=${EPOCHREALTIME//[!0-9]/}

"$TOP/scripts/debian-trees.sh" bookworm-minbase bullseye-minbase >"$TEST_TMP/trees.out" ||
	fatal "debian-trees.sh failed"
mapfile -t trees <"$TEST_TMP/trees.out"
src=${trees[0]}   # the tree of g1 and g2
other=${trees[1]} # g3, a guest made to leave garbage behind

mkfs_loop 2G ext4 "$TEST_TMP/poolfs"
pool=$TEST_TMP/poolfs/pool
V=("$VUNIFY" -p "$pool")
for g in g1 g2; do
	# 512-byte inodes keep a stub's xattrs inside its inode
	MKFS_EXT4_OPTS="-I 512" mkfs_loop 3G ext4 "$TEST_TMP/$g.fs"
	mkdir -p "$TEST_TMP/mnt/$g"
done
mopt=()
[ "$LAYOUT" = link ] && mopt=(--no-ino)
manifest "$src" "$TEST_TMP/src.man" "${mopt[@]}" || exit 1
# plain regular files under /usr of the tree: what the changes pick from
mapfile -t usrfiles < <(awk '$2 == "file" && $1 ~ /^\/usr\/[A-Za-z0-9\/._+-]+$/ { print substr($1, 2) }' "$TEST_TMP/src.man")
[ "${#usrfiles[@]}" -gt 100 ] || fatal "too few files under /usr in $src"
# small directories (usr/share/doc/PKG and the like)
mapfile -t leafdirs < <(printf '%s\n' "${usrfiles[@]}" | awk -F/ 'NF >= 5 { NF--; print }' OFS=/ | sort -u)
assert_ok "${V[@]}" init --layout "$LAYOUT" || exit 1

# ---- helpers ---------------------------------------------------------------

declare -A kills landed
commands=(add unify gc export remove)
for c in "${commands[@]}"; do
	kills[$c]=0
	landed[$c]=0
done
live=() # guests whose view must stay $TEST_TMP/G.exp.man

# timed CMD...: assert_ok CMD and set DUR_MS to its wall time.
timed() {
	local t0 rc=0
	t0=${EPOCHREALTIME//[!0-9]/}
	assert_ok "$@" || rc=$?
	DUR_MS=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
	echo "  took ${DUR_MS} ms"
	return "$rc"
}

# kill_run WHAT DURATION_MS CMD...: start CMD, SIGKILL it after a random
# delay in [0, 1.2 x DURATION_MS].  Sets KILL_RC (CMD's wait status) and
# KILL_DESC; a CMD that ended by itself must have succeeded.
kill_run() {
	local what=$1 dur=$2 pid ms s alive=0
	shift 2
	rnd $((dur * 6 / 5 + 1))
	ms=$R
	printf -v s '%d.%03d' $((ms / 1000)) $((ms % 1000))
	"$@" >"$TEST_TMP/kill.out" 2>"$TEST_TMP/kill.err" &
	pid=$!
	sleep "$s"
	kill -0 "$pid" 2>/dev/null && alive=1
	kill -9 "$pid" 2>/dev/null
	KILL_RC=0
	wait "$pid" 2>/dev/null || KILL_RC=$?
	kills[$what]=$((kills[$what] + 1))
	if [ "$KILL_RC" = 137 ]; then
		landed[$what]=$((landed[$what] + 1))
		KILL_DESC="$what killed after $ms ms (mid-command)"
	else
		KILL_DESC="$what killed after $ms ms (had ended, exit $KILL_RC, alive=$alive)"
		if [ "$KILL_RC" != 0 ]; then
			_fail "$KILL_DESC: $* failed on its own"
			_show "$TEST_TMP/kill.err" stderr
		fi
	fi
	echo "# $KILL_DESC"
}

registered() {
	"${V[@]}" status --json >"$TEST_TMP/status.json" 2>"$TEST_TMP/status.err" ||
		fatal "status --json: $(cat "$TEST_TMP/status.err")"
	jq -e --arg g "$1" '[.guests[] | select(.name == $g)] | length == 1' "$TEST_TMP/status.json" >/dev/null
}

# view_of G OUT: the manifest of G's merged view, mounted for the time of it.
view_of() {
	local rc=0
	must "${V[@]}" mount "$1" "$TEST_TMP/mnt/$1" || return 1
	manifest "$TEST_TMP/mnt/$1" "$2" "${mopt[@]}" || rc=1
	must "${V[@]}" umount "$1" || rc=1
	return "$rc"
}

# check_views WHEN: every live guest sees what it saw.
check_views() {
	local g
	for g in "${live[@]}"; do
		view_of "$g" "$TEST_TMP/$g.now.man" || continue
		assert_same_manifest "$TEST_TMP/$g.exp.man" "$TEST_TMP/$g.now.man" "$1: view of $g intact"
	done
}

# check_fsck WHEN: fsck exits 0.
check_fsck() {
	local rc=0
	"${V[@]}" fsck >"$TEST_TMP/fsck.out" 2>"$TEST_TMP/fsck.err" || rc=$?
	if [ "$rc" = 0 ]; then
		_pass "$1: fsck clean"
	else
		_fail "$1: fsck exit $rc"
		_show "$TEST_TMP/fsck.out" stdout
		_show "$TEST_TMP/fsck.err" stderr
	fi
}

# whiteouts DIR: the 0:0 character devices below DIR.
whiteouts() {
	find "$1" -type c -exec stat -c '%t:%T %n' {} + | sed -n 's/^0:0 //p'
}

# phase NAME: say which phase starts, and when.
phase() {
	echo "== $1 (at $(((${EPOCHREALTIME//[!0-9]/} - t_start) / 1000000)) s)"
}

# after_kill WHEN: what every kill is followed by.
after_kill() {
	check_views "$1"
	check_fsck "$1"
}

# ---- add --from ---------------------------------------------------------
# g1 is added once, timed; g2's add is killed, checked, re-run, and (but
# for the last round) purged again.

phase "add --from"
timed "${V[@]}" add g1 "$TEST_TMP/g1.fs/home" --from "$src" || exit 1
d_add=$DUR_MS
manifest "$TEST_TMP/g1.fs/home/upper" "$TEST_TMP/g1.upper.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/src.man" "$TEST_TMP/g1.upper.man" "add --from is faithful (g1)"
cp "$TEST_TMP/src.man" "$TEST_TMP/g1.exp.man"
live=(g1)
h2=$TEST_TMP/g2.fs/home
for ((i = 1; i <= n_other; i++)); do
	kill_run add "$d_add" "${V[@]}" add g2 "$h2" --from "$src"
	w="add #$i: $KILL_DESC"
	if registered g2; then
		manifest "$h2/upper" "$TEST_TMP/g2.upper.man" "${mopt[@]}"
		assert_same_manifest "$TEST_TMP/src.man" "$TEST_TMP/g2.upper.man" "$w: g2 registered with a complete upper"
	else
		_pass "$w: g2 not registered"
	fi
	manifest "$src" "$TEST_TMP/src.now.man" "${mopt[@]}"
	assert_same_manifest "$TEST_TMP/src.man" "$TEST_TMP/src.now.man" "$w: source tree untouched"
	after_kill "$w"
	rc=0
	"${V[@]}" add g2 "$h2" --from "$src" >"$LAST_STDOUT" 2>"$LAST_STDERR" || rc=$?
	if [ "$rc" = 0 ] || grep -q "already registered" "$LAST_STDERR"; then
		_pass "$w: re-run of add (exit $rc)"
	else
		_fail "$w: re-run of add g2 --from exits $rc"
		_show "$LAST_STDERR" stderr
		# what the message suggests, to go on
		must "${V[@]}" add g2 "$h2"
	fi
	manifest "$h2/upper" "$TEST_TMP/g2.upper.man" "${mopt[@]}"
	assert_same_manifest "$TEST_TMP/src.man" "$TEST_TMP/g2.upper.man" "$w: re-run ends with a faithful upper"
	registered g2 || _fail "$w: g2 not registered after the re-run"
	if [ "$i" -lt "$n_other" ]; then
		must "${V[@]}" remove g2 --purge
		rm -rf --one-file-system "$h2"
	fi
done
cp "$TEST_TMP/src.man" "$TEST_TMP/g2.exp.man"
live=(g1 g2)

# ---- unify ----------------------------------------------------------------
# Each round changes both guests through their mounts (a copy of usr/lib
# and of another directory under new names, the previous round's copies
# deleted, new content shared by both and content of their own, files
# deleted, chmod'ed, appended to), records their views, kills unify, checks,
# re-runs it and checks that the work is done.

phase "unify"
# shellcheck disable=SC2034 # read through the nameref in upper_leftovers
copy_dirs=(usr/bin usr/share/man usr/share/zoneinfo usr/share/locale usr/sbin)

# change_guest G ROUND: random changes through G's mount; G.exp.man is then
# its view.
change_guest() {
	local g=$1 i=$2 m=$TEST_TMP/mnt/$1 k p
	must "${V[@]}" mount "$g" "$m" || return 1
	rm -rf "$m"/usr/crash-copy.* "$m/usr/local/lib/crash.$((i - 2))"
	mkdir -p "$m/usr/crash-copy.$i"
	cp -a "$m/usr/lib" "$m/usr/crash-copy.$i/lib" || _fail "cp usr/lib in $g"
	rnd ${#copy_dirs[@]}
	cp -a "$m/${copy_dirs[R]}" "$m/usr/crash-copy.$i/x" || _fail "cp ${copy_dirs[R]} in $g"
	cp -a "$TEST_TMP/new.$i" "$m/usr/local/lib/crash.$i"
	cp -a "$TEST_TMP/new.$i/f0" "$m/var/cache/crash-shared.$i"
	head -c 65536 /dev/urandom >"$m/var/lib/crash-own.$g.$i"
	head -c 4096 /dev/urandom >"$m/usr/local/bin/crash-own.$g.$i"
	# a hard-link group whose links are far apart in a walk: one early
	# (/etc), one last (/usr/zzz...), so that most instants of a walk over
	# the guest fall between them
	rm -f "$m"/etc/crash-link.* "$m"/usr/zzz-crash-link.*
	head -c 8192 /dev/urandom >"$m/etc/crash-link.$i"
	ln "$m/etc/crash-link.$i" "$m/usr/zzz-crash-link.$i"
	for k in 1 2 3; do
		rnd ${#usrfiles[@]}
		rm -f "$m/${usrfiles[R]}"
	done
	for k in 1 2; do
		rnd ${#usrfiles[@]}
		p=$m/${usrfiles[R]}
		[ -f "$p" ] && chmod g+w,o-r "$p"
	done
	rnd ${#usrfiles[@]}
	p=$m/${usrfiles[R]}
	[ -f "$p" ] && echo "round $i" >>"$p"
	manifest "$m" "$TEST_TMP/$g.exp.man" "${mopt[@]}"
	must "${V[@]}" umount "$g"
}

# new_content ROUND: files of new content both guests get this round.
new_content() {
	local i=$1 k
	mkdir -p "$TEST_TMP/new.$1"
	for ((k = 0; k < 12; k++)); do
		rnd 262144
		head -c $((R + 1)) /dev/urandom >"$TEST_TMP/new.$i/f$k"
	done
	# a hard-link group, unified as one
	ln "$TEST_TMP/new.$i/f1" "$TEST_TMP/new.$i/f1.link"
}

# upper_leftovers G: regular files of 1 byte or more left in G's upper
# under /usr (copied-up ones too: their trusted.overlay.origin is
# bookkeeping), and whiteouts (deletions not folded into the lower layer).
# The redirect layout leaves hard-link groups in the upper (DESIGN.md).
upper_leftovers() {
	local up=$TEST_TMP/$1.fs/home/upper
	local -a single=()
	[ "$LAYOUT" = redirect ] && single=(-links 1)
	find "$up/usr" -type f -size +0c "${single[@]}"
	whiteouts "$up/usr"
}

# check_done WHEN: the work was finished.
check_done() {
	local g left
	for g in "${live[@]}"; do
		left=$(upper_leftovers "$g")
		if [ -z "$left" ]; then
			_pass "$1: nothing left to unify in $g's upper under /usr"
		else
			_fail "$1: $g's upper still holds under /usr: $(head -5 <<<"$left" | tr '\n' ' ')"
		fi
	done
}

# rounds 0 and 1 are not killed: 0 is the first unify of the trees, 1
# measures the duration of a round
for ((i = 0; i <= n_unify + 1; i++)); do
	new_content "$i"
	change_guest g1 "$i"
	change_guest g2 "$i"
	if [ "$i" -lt 2 ]; then
		timed "${V[@]}" unify || exit 1
		d_unify=$DUR_MS
		check_views "unify round $i"
		check_done "unify round $i"
		check_fsck "unify round $i"
		continue
	fi
	kill_run unify "$d_unify" "${V[@]}" unify
	w="unify #$((i - 1)): $KILL_DESC"
	after_kill "$w"
	assert_ok "${V[@]}" unify
	check_views "$w, re-run"
	check_done "$w, re-run"
	rm -rf "$TEST_TMP/new.$((i - 2))"
done

# ---- gc -------------------------------------------------------------------
# Garbage: g3 (another Debian release) is added, unified and purged; its
# own objects are then unreferenced.

phase "gc"
make_garbage() {
	must "${V[@]}" add g3 "$TEST_TMP/g2.fs/home3" --from "$other" &&
		must "${V[@]}" unify g3 &&
		must "${V[@]}" remove g3 --purge
	rm -rf --one-file-system "$TEST_TMP/g2.fs/home3"
}
make_garbage
timed "${V[@]}" gc || exit 1
d_gc=$DUR_MS
cat "$LAST_STDOUT"
for ((i = 1; i <= n_other; i++)); do
	make_garbage
	kill_run gc "$d_gc" "${V[@]}" gc
	w="gc #$i: $KILL_DESC"
	after_kill "$w"
	assert_ok "${V[@]}" gc
	assert_ok "${V[@]}" gc
	if grep -q "^gc: 0 objects" "$LAST_STDOUT"; then
		_pass "$w: a second gc deletes nothing"
	else
		_fail "$w: a second gc still deletes: $(cat "$LAST_STDOUT")"
	fi
done
check_views "after gc"

# ---- export ---------------------------------------------------------------

phase "export"
dest=$TEST_TMP/g1.fs/export
timed "${V[@]}" export g1 "$dest" || exit 1
d_export=$DUR_MS
manifest "$dest" "$TEST_TMP/export.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/g1.exp.man" "$TEST_TMP/export.man" "export equals the view"
rm -rf --one-file-system "$dest"
for ((i = 1; i <= n_other; i++)); do
	kill_run export "$d_export" "${V[@]}" export g1 "$dest"
	w="export #$i: $KILL_DESC"
	after_kill "$w"
	if [ -e "$dest" ]; then
		manifest "$dest" "$TEST_TMP/export.man" "${mopt[@]}"
		assert_same_manifest "$TEST_TMP/g1.exp.man" "$TEST_TMP/export.man" "$w: DEST is complete"
	else
		_pass "$w: DEST does not exist"
		assert_ok "${V[@]}" export g1 "$dest"
		manifest "$dest" "$TEST_TMP/export.man" "${mopt[@]}"
		assert_same_manifest "$TEST_TMP/g1.exp.man" "$TEST_TMP/export.man" "$w: re-run exports the view"
		[ -e "$dest.vunify-tmp" ] && _fail "$w: $dest.vunify-tmp left after the re-run"
	fi
	rm -rf --one-file-system "$dest"
done

# ---- remove ---------------------------------------------------------------
# g2 is (re-)registered on its plain upper, changed, unified, changed
# again (whiteouts in the upper), then removed.

phase "remove"
live=(g1)
prep_remove() {
	local i=$1 m=$TEST_TMP/mnt/g2 k p
	registered g2 || must "${V[@]}" add g2 "$h2" || return 1
	must "${V[@]}" mount g2 "$m" || return 1
	rm -rf "$m/usr/crash-copy".*
	for k in 1 2 3; do
		rnd ${#usrfiles[@]}
		rm -f "$m/${usrfiles[R]}"
	done
	# a hard-link group far apart in a walk, as in change_guest; unified
	# next, so that remove walks it in the lower layer
	rm -f "$m"/etc/crash-link.* "$m"/usr/zzz-crash-link.*
	head -c 8192 /dev/urandom >"$m/etc/crash-link.r$i"
	ln "$m/etc/crash-link.r$i" "$m/usr/zzz-crash-link.r$i"
	manifest "$m" "$TEST_TMP/g2.exp.man" "${mopt[@]}"
	must "${V[@]}" umount g2
	# from round 1 on, a whole plain tree to unify (several batches): timed
	# in round 1, killed from round 2 on
	live=(g1 g2)
	if [ "$i" = 0 ]; then
		assert_ok "${V[@]}" unify g2 || exit 1
	elif [ "$i" = 1 ]; then
		timed "${V[@]}" unify g2 || exit 1
		d_unify_all=$DUR_MS
	else
		kill_run unify "$d_unify_all" "${V[@]}" unify g2
		after_kill "remove #$i, unify g2 first: $KILL_DESC"
		assert_ok "${V[@]}" unify g2
	fi
	check_views "remove #$i, unify g2 first"
	live=(g1)
	must "${V[@]}" mount g2 "$m" || return 1
	for k in 1 2 3; do
		rnd ${#usrfiles[@]}
		rm -f "$m/${usrfiles[R]}"
	done
	# a directory replaced: opaque in the upper
	rnd ${#leafdirs[@]}
	p=$m/${leafdirs[R]}
	rm -rf "${p:?}"
	mkdir -p "$p"
	echo "round $i" >"$p/new-file"
	manifest "$m" "$TEST_TMP/g2.exp.man" "${mopt[@]}"
	must "${V[@]}" umount g2
}

# check_removed WHEN: g2 is gone from the pool, its upper is its whole view.
check_removed() {
	registered g2 && _fail "$1: g2 still registered"
	manifest "$h2/upper" "$TEST_TMP/g2.upper.man" "${mopt[@]}"
	assert_same_manifest "$TEST_TMP/g2.exp.man" "$TEST_TMP/g2.upper.man" "$1: HOME/upper holds g2's view"
	[ -e "$h2/meta" ] && _fail "$1: $h2/meta left"
	[ -e "$pool/roots/g2" ] && _fail "$1: $pool/roots/g2 left"
	[ -z "$(whiteouts "$h2/upper")" ] || _fail "$1: whiteouts left in the upper: $(whiteouts "$h2/upper" | head -3)"
}

prep_remove 0
timed "${V[@]}" remove g2 || exit 1
d_remove=$DUR_MS
check_removed "remove (timed)"
for ((i = 1; i <= n_other; i++)); do
	prep_remove "$i"
	kill_run remove "$d_remove" "${V[@]}" remove g2
	w="remove #$i: $KILL_DESC"
	if registered g2; then
		view_of g2 "$TEST_TMP/g2.now.man" &&
			assert_same_manifest "$TEST_TMP/g2.exp.man" "$TEST_TMP/g2.now.man" "$w: view of g2 (registered) intact"
		after_kill "$w"
		assert_ok "${V[@]}" remove g2
	else
		manifest "$h2/upper" "$TEST_TMP/g2.upper.man" "${mopt[@]}"
		assert_same_manifest "$TEST_TMP/g2.exp.man" "$TEST_TMP/g2.upper.man" "$w: g2 unregistered, HOME/upper is its view"
		after_kill "$w"
		assert_fail_msg "no such guest" "${V[@]}" remove g2
	fi
	check_removed "$w, re-run"
done

# ---- end ------------------------------------------------------------------

check_fsck "the end"
total=0
total_landed=0
per=
for c in "${commands[@]}"; do
	total=$((total + kills[$c]))
	total_landed=$((total_landed + landed[$c]))
	per="$per ${c}_kills=${kills[$c]} ${c}_landed=${landed[$c]}"
	if [ "${kills[$c]}" -ge 3 ] && [ "${landed[$c]}" = 0 ]; then
		_fail "no kill of $c landed mid-command: the delays miss it"
	fi
done
secs=$(((${EPOCHREALTIME//[!0-9]/} - t_start) / 1000000))
echo "durations (ms): add=$d_add unify=$d_unify unify_whole_guest=$d_unify_all gc=$d_gc export=$d_export remove=$d_remove"
# shellcheck disable=SC2154 # seed: set by seed_random (lib.sh)
echo "FIGURES crash layout=$LAYOUT kills=$total landed_mid_command=$total_landed$per seed=$seed wall=${secs}s"
