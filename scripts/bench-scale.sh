#!/bin/bash
# vunify scale benchmark: many synthetic guests in one pool.  Needs root
# (a loop-mounted ext4).  Run by `make bench-scale`, which builds
# build-release/ first.
#
#   scripts/bench-scale.sh            run it; prints one table, writes bench-scale.txt
#   scripts/bench-scale.sh --clean    unmount and delete a left-over work area
#
# What it does, on one loop-mounted ext4 (-I 512, direct I/O loop device),
# guests' homes and the pool on it (the redirect layout, or what auto picks):
#   - tests/tools/mkguests writes N synthetic guest trees of SCALE_FILES
#     files each (80 % the same paths and contents in every guest, 10 %
#     unique system files, 10 % unique files of the guest's own; log-normal
#     sizes, median 2 KiB);
#   - the pool grows in three unify runs: guests 1..N/4, then up to N/2,
#     then up to N (each run unifies only the guests added for it); each
#     run's wall time and peak RSS (/usr/bin/time), and after each, the
#     time of `status` and of `gc` against the pool of that many guests;
#   - peak RSS per million files of one run: the RSS of each run over the
#     files it scanned, and the slope between the smallest and the largest
#     run (which leaves out the fixed part: program, libraries, buffers);
#   - one new guest (SCALE_FILES files) unified into the pool of N guests
#     against the same guest unified into an empty pool on the same
#     filesystem, SCALE_REPS times each, interleaved (median and ratio);
#     and a guest of 4 x SCALE_FILES into the full pool (cost against the
#     guest's own size).
#   The page cache is warm (trees just written, synced) in every timed run.
#
# Environment:
#   SCALE_N          guests in the pool          (default 50)
#   SCALE_FILES      files per guest             (default 2000)
#   SCALE_REPS       new-guest runs per side     (default 3)
#   SCALE_SEED       content seed                (default 1)
#   BENCH_DIR        work area                   (default /var/tmp/vunify-bench-scale)
#   BENCH_BUILD      build directory             (default build-release of this repo)
#   VUNIFY           the vunify binary           (default $BENCH_BUILD/vunify)
#   BENCH_OUT        machine-readable result     (default $BENCH_BUILD/bench-scale.txt)
#   BENCH_IMG_SIZE   the filesystem's size       (default 16G, sparse)
set -eu
set -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/scripts/lib.sh"
BUILD_DIR=${BENCH_BUILD:-$here/build-release}
VUNIFY=${VUNIFY:-$BUILD_DIR/vunify}
MKGUESTS=$BUILD_DIR/tools/mkguests
BENCH_DIR=${BENCH_DIR:-/var/tmp/vunify-bench-scale}
OUT=${BENCH_OUT:-$BUILD_DIR/bench-scale.txt}
N=${SCALE_N:-50}
FILES=${SCALE_FILES:-2000}
REPS=${SCALE_REPS:-3}
SEED=${SCALE_SEED:-1}
IMG_SIZE=${BENCH_IMG_SIZE:-16G}
TIME=/usr/bin/time

parse_mode run "$@"
check_work_dir BENCH_DIR
need_root "loop device, mount"
for v in N FILES REPS SEED; do
	case ${!v} in '' | *[!0-9]*) die "SCALE_$v must be a number: ${!v}" ;; esac
done
[ "$N" -ge 4 ] || die "SCALE_N must be at least 4"
[ "$FILES" -ge 10 ] || die "SCALE_FILES must be at least 10"
[ "$REPS" -ge 1 ] || die "SCALE_REPS must be at least 1"

IMG=$BENCH_DIR/img
FSA=$BENCH_DIR/a
LOG=$BENCH_DIR/logs

cleanup() {
	[ -e "$BENCH_DIR" ] || return 0
	release_image "$IMG/a.img"
	! findmnt -rn "$FSA" >/dev/null 2>&1 || die "still mounted: $FSA"
	rm -rf --one-file-system "$IMG" "$FSA" "$BENCH_DIR/tmp"
}

if [ "$mode" = clean ]; then
	cleanup
	rm -rf --one-file-system "$BENCH_DIR"
	exit 0
fi

T_START=$(now)
[ -x "$VUNIFY" ] || die "no vunify binary at $VUNIFY (make bench-scale builds it)"
[ -x "$MKGUESTS" ] || die "no mkguests tool at $MKGUESTS (make bench-scale builds it)"
need_commands mkfs.ext4 losetup findmnt
[ -x "$TIME" ] || die "missing $TIME (Debian package time)"

trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
mkdir -p "$IMG" "$FSA" "$LOG" "$BENCH_DIR/tmp"
chmod 700 "$BENCH_DIR"
rm -f "$LOG"/*.log

loop_ext4 "$IMG/a.img" "$IMG_SIZE" "$FSA"

# timed ID CMD...: run CMD under /usr/bin/time; sets T_WALL, T_CPU (user +
# sys: steadier than wall on a shared machine), T_RSS (KiB).
timed() {
	local id=$1 tf=$BENCH_DIR/tmp/time.$1 rc=0 u s
	shift
	"$TIME" -f '%e %M %U %S' -o "$tf" "$@" >"$LOG/$id.log" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		sed 's/^/     | /' "$LOG/$id.log" | tail -n 20 >&2
		die "failed (exit $rc): $*"
	fi
	read -r T_WALL T_RSS u s < <(tail -n 1 "$tf")
	T_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
phases() { awk '/^(scan|hash|decide|store) [0-9.]+$/ { printf " %s %s", $1, $2 }' "$LOG/$1.log"; }

SRC=$FSA/src
say "Building $N guests of $FILES files (tests/tools/mkguests, seed $SEED)"
GUESTS=()
for i in $(seq 1 "$N"); do GUESTS+=("g$i"); done
NEWS=()
for i in $(seq 1 "$REPS"); do NEWS+=("new$i"); done
t0=$(now)
mkdir -p "$SRC" "$FSA/src-empty" "$FSA/src-big"
# two writers at a time
half=$((N / 2))
"$MKGUESTS" "$SRC" "$FILES" "$SEED" "${GUESTS[@]:0:$half}" >"$LOG/mkguests-1.log" &
"$MKGUESTS" "$SRC" "$FILES" "$SEED" "${GUESTS[@]:$half}" >"$LOG/mkguests-2.log" || die "mkguests failed"
wait $! || die "mkguests failed"
"$MKGUESTS" "$SRC" "$FILES" "$SEED" "${NEWS[@]}" >"$LOG/mkguests-3.log" &
"$MKGUESTS" "$FSA/src-empty" "$FILES" "$SEED" "${NEWS[@]}" >"$LOG/mkguests-4.log" || die "mkguests failed"
wait $! || die "mkguests failed"
"$MKGUESTS" "$FSA/src-big" $((FILES * 4)) "$SEED" big >"$LOG/mkguests-5.log" || die "mkguests failed"
sync -f "$FSA"
GUEST_BYTES=$(awk '{ sub("bytes=", "", $3); s += $3 } END { printf "%.0f", s / NR }' "$LOG/mkguests-1.log" "$LOG/mkguests-2.log")
info "$N + $((2 * REPS + 1)) guests written in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s; a guest: $FILES files, $(mib "$GUEST_BYTES") MiB on average"

POOL=$FSA/pool
H=$FSA/h
mkdir -p "$H"
"$VUNIFY" -p "$POOL" init >"$LOG/init.log" 2>&1 || die "vunify init failed: $(cat "$LOG/init.log")"
LAYOUT=$("$VUNIFY" -p "$POOL" status --json | sed -n 's/.*"layout" *: *"\([a-z]*\)".*/\1/p')
info "layout: $LAYOUT"

# add_guests POOL SRCDIR HOMEDIR NAME...: register each, its tree moved in.
add_guests() {
	local pool=$1 src=$2 homes=$3 g
	shift 3
	for g; do
		"$VUNIFY" -p "$pool" add "$g" "$homes/$g" --from "$src/$g" --move >>"$LOG/add.log" 2>&1 ||
			die "vunify add $g failed: $(tail -n 5 "$LOG/add.log")"
	done
	sync -f "$homes"
}

STEPS=("$((N / 4))" "$((N / 2))" "$N")
GROW=()
have=0
for upto in "${STEPS[@]}"; do
	batch=("${GUESTS[@]:$have:$((upto - have))}")
	say "Pool from $have to $upto guests: unify ${#batch[@]} guests in one run"
	add_guests "$POOL" "$SRC" "$H" "${batch[@]}"
	timed "unify-$upto" env VUNIFY_TIMING=1 "$VUNIFY" -p "$POOL" unify "${batch[@]}"
	u_wall=$T_WALL u_rss=$T_RSS
	files=$((${#batch[@]} * FILES))
	info "unify: $u_wall s, $((u_rss / 1024)) MiB peak RSS, $files files;$(phases "unify-$upto")"
	timed "status-$upto" "$VUNIFY" -p "$POOL" status
	s_wall=$T_WALL s_rss=$T_RSS
	timed "gc-$upto" "$VUNIFY" -p "$POOL" gc
	g_wall=$T_WALL g_rss=$T_RSS
	info "status: $s_wall s ($((s_rss / 1024)) MiB); gc: $g_wall s ($((g_rss / 1024)) MiB)"
	GROW+=("$upto|${#batch[@]}|$files|$u_wall|$u_rss|$s_wall|$s_rss|$g_wall|$g_rss|$(phases "unify-$upto")")
	have=$upto
done
OBJECTS=$("$VUNIFY" -p "$POOL" status --json | sed -n 's/.*"objects" *: *\([0-9]*\).*/\1/p')

say "One new guest: into the pool of $N guests vs into an empty pool ($REPS runs each, interleaved)"
FULL=()
EMPTY=()
FULL_CPU=()
EMPTY_CPU=()
for i in $(seq 1 "$REPS"); do
	g=new$i
	add_guests "$POOL" "$SRC" "$H" "$g"
	timed "new-full-$i" env VUNIFY_TIMING=1 "$VUNIFY" -p "$POOL" unify "$g"
	FULL+=("$T_WALL")
	FULL_CPU+=("$T_CPU")
	info "into $N guests: $T_WALL s, CPU $T_CPU s ($((T_RSS / 1024)) MiB);$(phases "new-full-$i")"
	ep=$FSA/empty$i
	"$VUNIFY" -p "$ep" init >>"$LOG/init.log" 2>&1 || die "vunify init $ep failed"
	add_guests "$ep" "$FSA/src-empty" "$FSA/he$i" "$g"
	timed "new-empty-$i" env VUNIFY_TIMING=1 "$VUNIFY" -p "$ep" unify "$g"
	EMPTY+=("$T_WALL")
	EMPTY_CPU+=("$T_CPU")
	info "into an empty pool: $T_WALL s, CPU $T_CPU s ($((T_RSS / 1024)) MiB);$(phases "new-empty-$i")"
done
FULL_MED=$(printf '%s\n' "${FULL[@]}" | median)
EMPTY_MED=$(printf '%s\n' "${EMPTY[@]}" | median)
FULL_CPU_MED=$(printf '%s\n' "${FULL_CPU[@]}" | median)
EMPTY_CPU_MED=$(printf '%s\n' "${EMPTY_CPU[@]}" | median)

say "A guest of $((4 * FILES)) files into the pool of $N guests"
add_guests "$POOL" "$FSA/src-big" "$H" big
timed new-big env VUNIFY_TIMING=1 "$VUNIFY" -p "$POOL" unify big
BIG_WALL=$T_WALL BIG_RSS=$T_RSS
info "$BIG_WALL s ($((BIG_RSS / 1024)) MiB);$(phases new-big)"

TOTAL_WALL=$(awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
first=${GROW[0]}
last=${GROW[2]}
IFS='|' read -r _ _ f1 _ r1 _ <<<"$first"
IFS='|' read -r _ _ f3 _ r3 _ <<<"$last"
SLOPE=$(awk -v f1="$f1" -v f3="$f3" -v r1="$r1" -v r3="$r3" 'BEGIN {
	if (f3 > f1) printf "%.1f", (r3 - r1) / 1024 / (f3 - f1) * 1e6; else printf "-" }')
{
	echo
	printf 'vunify bench-scale: N=%d guests of %d files (%s MiB each on average; 80 %% shared, seed %d), layout %s\n' \
		"$N" "$FILES" "$(mib "$GUEST_BYTES")" "$SEED" "$LAYOUT"
	printf 'one ext4 (-I 512) on a loop device, warm page cache; %s CPUs, kernel %s; %s objects at N\n\n' \
		"$(nproc)" "$(uname -r)" "$OBJECTS"
	printf '%-8s %7s %8s %9s %9s %12s %9s %9s  %s\n' "guests" "+run" "files" "unify s" "RSS MiB" \
		"MiB/Mfiles" "status s" "gc s" "unify phases (s)"
	for r in "${GROW[@]}"; do
		IFS='|' read -r upto nb files uw ur sw _ gw _ ph <<<"$r"
		printf '%-8s %7s %8s %9s %9s %12s %9s %9s %s\n' "$upto" "$nb" "$files" "$uw" \
			"$(awk -v k="$ur" 'BEGIN { printf "%.1f", k / 1024 }')" \
			"$(awk -v k="$ur" -v f="$files" 'BEGIN { printf "%.1f", k / 1024 / f * 1e6 }')" "$sw" "$gw" "$ph"
	done
	echo
	printf 'peak RSS per million files, one run: %s MiB at %d files (whole process); slope %s MiB per million files between the runs of %d and %d files (goal <= 150)\n' \
		"$(awk -v k="$r3" -v f="$f3" 'BEGIN { printf "%.1f", k / 1024 / f * 1e6 }')" "$f3" "$SLOPE" "$f1" "$f3"
	printf 'one new guest (%d files), median of %d: into the pool of %d guests %s s, into an empty pool %s s: ratio %s (goal <= 1.2)\n' \
		"$FILES" "$REPS" "$N" "$FULL_MED" "$EMPTY_MED" \
		"$(awk -v a="$FULL_MED" -v b="$EMPTY_MED" 'BEGIN { printf "%.2f", a / b }')"
	printf '   runs into the full pool: %s; into an empty pool: %s\n' "${FULL[*]}" "${EMPTY[*]}"
	printf '   CPU (user + sys), median: into the pool of %d guests %s s, into an empty pool %s s: ratio %s\n' \
		"$N" "$FULL_CPU_MED" "$EMPTY_CPU_MED" "$(awk -v a="$FULL_CPU_MED" -v b="$EMPTY_CPU_MED" 'BEGIN { printf "%.2f", a / b }')"
	printf 'a guest of %d files into the pool of %d guests: %s s, %s x the %d-file guest (its size: 4 x)\n' \
		$((4 * FILES)) "$N" "$BIG_WALL" "$(awk -v a="$BIG_WALL" -v b="$FULL_MED" 'BEGIN { printf "%.2f", a / b }')" "$FILES"
	echo
	echo "whole benchmark: $TOTAL_WALL s; logs in $LOG"
} | tee "$LOG/report.txt"

{
	printf 'scale date=%s kernel=%s cpus=%s n=%s files=%s guest_bytes=%s layout=%s objects=%s total_s=%s\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -r)" "$(nproc)" "$N" "$FILES" "$GUEST_BYTES" "$LAYOUT" \
		"$OBJECTS" "$TOTAL_WALL"
	for r in "${GROW[@]}"; do
		IFS='|' read -r upto nb files uw ur sw sr gw gr _ <<<"$r"
		printf 'grow guests=%s run_guests=%s run_files=%s unify_s=%s unify_rss_kib=%s status_s=%s status_rss_kib=%s gc_s=%s gc_rss_kib=%s\n' \
			"$upto" "$nb" "$files" "$uw" "$ur" "$sw" "$sr" "$gw" "$gr"
	done
	printf 'rss mib_per_mfiles=%s slope_mib_per_mfiles=%s\n' \
		"$(awk -v k="$r3" -v f="$f3" 'BEGIN { printf "%.1f", k / 1024 / f * 1e6 }')" "$SLOPE"
	printf 'newguest files=%s full_s=%s empty_s=%s full_cpu_s=%s empty_cpu_s=%s big_files=%s big_s=%s\n' \
		"$FILES" "$FULL_MED" "$EMPTY_MED" "$FULL_CPU_MED" "$EMPTY_CPU_MED" \
		$((4 * FILES)) "$BIG_WALL"
} >"$OUT"
echo "machine-readable: $OUT"
