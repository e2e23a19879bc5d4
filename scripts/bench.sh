#!/bin/bash
# vunify benchmark: five debootstrapped Debian guests, vunify beside the
# usual deduplicators, and the page cache the guests use.  Needs root (loop
# devices, mounts, drop_caches).  Run by `make bench`, which builds
# build-release/ first.
#
#   scripts/bench.sh            run it; prints one table, writes bench.txt
#   scripts/bench.sh --clean    unmount and delete a left-over work area
#
# What it does, all on loop-mounted ext4 (-I 512, direct I/O loop devices,
# so the host's page cache does not hold the images a second time):
#   - builds (or takes from the cache) five Debian trees with
#     scripts/debian-trees.sh;
#   - plain copies: reading every byte and stat of every entry (warm cache);
#   - each peer tool on a fresh filesystem holding a fresh copy of the five
#     trees (copy untimed, warm cache): hardlink -c, jdupes -r -L,
#     rdfind -makehardlinks true, ostree commit (five commits into one bare
#     repo); wall, user+sys CPU and peak RSS from /usr/bin/time, disk after
#     from df (used blocks minus those of the empty filesystem);
#   - the floor: tests/tools/opfloor hashes every file, creates one
#     metacopy stub per file in a working copy on a private tmpfs and
#     writes the EROFS image of it, on one thread (work no first redirect
#     unify avoids since pool format 4 keeps no stub inodes on disk), so
#     its CPU time over the CPUs bounds any first unify;
#   - vunify: pool and homes on one filesystem (layout auto): first unify,
#     no-change re-unify; the link layout on one filesystem; pool on a
#     second filesystem (cross-filesystem unify), beside `cp -r` of the
#     unique content to another filesystem (the copy it has to make);
#     VUNIFY_TIMING=1 phase times of the first and cross-fs runs;
#   - page cache: the five guests of the one-filesystem pool mounted, caches
#     dropped, every file of every guest read; the same over five plain
#     copies; beside the ideal (unique content).  Measured two ways: the
#     growth of Cached in /proc/meminfo (whole machine, noisy) and fincore(1)
#     over every file of the filesystem (exact, that filesystem only);
#   - runtime (scripts/bench-runtime.sh, run last): the guest's own programs
#     (stat walk, dpkg --verify, python3 imports) cold and warm on a plain
#     tree, the redirect layout with stubs, the redirect layout with its
#     metadata packed into one EROFS image, the same image by mkfs.erofs,
#     and the link layout, as ratios to the plain tree side by side.
#     BENCH_RUNTIME=0 leaves it out.
#
# Environment:
#   BENCH_DIR        work area               (default /var/tmp/vunify-bench)
#   BENCH_BUILD      build directory         (default build-release of this repo)
#   VUNIFY           the vunify binary       (default $BENCH_BUILD/vunify)
#   MANIFEST         the manifest tool       (default $BENCH_BUILD/tools/manifest)
#   BENCH_OUT        machine-readable result (default $BENCH_BUILD/bench.txt)
#   BENCH_TREES      tree names              (default: the five of TREES= below)
#   BENCH_IMG_SIZE   guests' filesystem      (default 8G, sparse)
#   BENCH_POOL_SIZE  the cross-fs pool's fs  (default 4G, sparse)
set -eu
set -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/scripts/lib.sh"
BUILD_DIR=${BENCH_BUILD:-$here/build-release}
VUNIFY=${VUNIFY:-$BUILD_DIR/vunify}
MANIFEST=${MANIFEST:-$BUILD_DIR/tools/manifest}
OPFLOOR=$BUILD_DIR/tools/opfloor
BENCH_DIR=${BENCH_DIR:-/var/tmp/vunify-bench}
OUT=${BENCH_OUT:-$BUILD_DIR/bench.txt}
TREES=${BENCH_TREES:-bookworm-minbase bookworm-web bullseye-minbase bookworm-base bookworm-dev}
IMG_SIZE=${BENCH_IMG_SIZE:-8G}
POOL_SIZE=${BENCH_POOL_SIZE:-4G}
TIME=/usr/bin/time

parse_mode run "$@"
check_work_dir BENCH_DIR
need_root "loop devices, mounts, drop_caches"

IMG=$BENCH_DIR/img # image files
FSA=$BENCH_DIR/a   # the one filesystem (guests, and the pool in one-fs runs)
FSB=$BENCH_DIR/b   # the second filesystem (the pool of the cross-fs run)
MNT=$BENCH_DIR/mnt # the guests' merged roots
LOG=$BENCH_DIR/logs
POOL="" # the pool whose guests cleanup unmounts

cached_bytes() { awk '/^Cached:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo; }
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# ---------------------------------------------------------------- cleanup --

umount_guests() {
	local m g
	[ -d "$MNT" ] || return 0
	for m in "$MNT"/*; do
		[ -d "$m" ] || continue
		findmnt -rn "$m" >/dev/null 2>&1 || continue
		g=${m##*/}
		if [ -n "$POOL" ] && [ -x "$VUNIFY" ]; then
			"$VUNIFY" -p "$POOL" umount "$g" >/dev/null 2>&1 || true
		fi
		! findmnt -rn "$m" >/dev/null 2>&1 || umount "$m" 2>/dev/null || umount -l "$m"
	done
}

cleanup() {
	[ -e "$BENCH_DIR" ] || return 0
	local t
	umount_guests
	for t in $(mounts_below "$BENCH_DIR"); do
		umount "$t" 2>/dev/null || umount -l "$t"
	done
	release_image "$IMG/a.img"
	release_image "$IMG/b.img"
	[ -z "$(mounts_below "$BENCH_DIR")" ] || die "still mounted below $BENCH_DIR"
	rm -rf --one-file-system "$IMG" "$FSA" "$FSB" "$MNT" "$BENCH_DIR/tmp"
}

if [ "$mode" = clean ]; then
	cleanup
	rm -rf --one-file-system "$BENCH_DIR"
	exit 0
fi

# ------------------------------------------------------------------ setup --

T_START=$(now)
[ -x "$VUNIFY" ] || die "no vunify binary at $VUNIFY (make bench builds it)"
[ -x "$MANIFEST" ] || die "no manifest tool at $MANIFEST (make bench builds it)"
[ -x "$OPFLOOR" ] || die "no opfloor tool at $OPFLOOR (make bench builds it)"
need_commands mkfs.ext4 losetup findmnt fincore hardlink jdupes rdfind ostree xargs
[ -x "$TIME" ] || die "missing $TIME (Debian package time)"

trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
mkdir -p "$IMG" "$FSA" "$FSB" "$MNT" "$LOG" "$BENCH_DIR/tmp"
chmod 700 "$BENCH_DIR"
rm -f "$LOG"/*.log

say "Debian trees (scripts/debian-trees.sh, cached)"
# shellcheck disable=SC2086 # the list of names is split on purpose
tree_out=$("$here/scripts/debian-trees.sh" $TREES) || die "scripts/debian-trees.sh $TREES failed"
mapfile -t TREE_DIRS <<<"$tree_out"
NG=${#TREE_DIRS[@]}
[ "$NG" -gt 0 ] || die "no trees"
GUESTS=()
for i in $(seq 1 "$NG"); do GUESTS+=("g$i"); done
for i in "${!TREE_DIRS[@]}"; do info "${GUESTS[$i]}: ${TREE_DIRS[$i]}"; done

# Files and bytes of the five trees, and their unique content (the ideal).
read -r N_FILES N_BYTES < <(find "${TREE_DIRS[@]}" -type f -printf '%s\n' |
	awk '{ n++; s += $1 } END { printf "%.0f %.0f\n", n, s }')
say "Unique content (sha256 of every file, build-release/tools/manifest)"
for i in "${!TREE_DIRS[@]}"; do
	"$MANIFEST" "${TREE_DIRS[$i]}" >"$BENCH_DIR/tmp/manifest.$i" &
	# two at a time
	if [ $((i % 2)) = 1 ]; then wait; fi
done
wait
read -r U_FILES U_BYTES U_PAGES < <(cat "$BENCH_DIR"/tmp/manifest.* | awk '
	$2 == "file" {
		s = ""; h = ""
		for (i = 3; i <= NF; i++) {
			if (substr($i, 1, 5) == "size=") s = substr($i, 6)
			else if (substr($i, 1, 7) == "sha256=") h = substr($i, 8)
		}
		if (s > 0 && !(h in seen)) {
			seen[h] = 1; n++; b += s; p += int((s + 4095) / 4096) * 4096
		}
	}
	END { printf "%.0f %.0f %.0f\n", n, b, p }')
info "$N_FILES regular files, $(mib "$N_BYTES") MiB; $U_FILES distinct non-empty contents, $(mib "$U_BYTES") MiB"

# fresh_fs NAME SIZE MOUNTPOINT: a new, empty ext4 on a loop device
# (loop_ext4 in scripts/lib.sh), its image IMG/NAME.img; the bytes it uses
# empty into EMPTY[NAME].
declare -A EMPTY
fresh_fs() {
	local name=$1
	findmnt -rn "$3" >/dev/null 2>&1 && umount "$3"
	release_image "$IMG/$name.img"
	loop_ext4 "$IMG/$name.img" "$2" "$3"
	EMPTY[$name]=$(used_bytes "$3")
}
# disk_after NAME MOUNTPOINT: bytes used on it beyond the empty filesystem.
disk_after() {
	sync -f "$2"
	echo $(($(used_bytes "$2") - EMPTY[$1]))
}

# copy_trees DEST: a plain copy of the five trees in DEST/gN.
copy_trees() {
	local i
	mkdir -p "$1"
	for i in "${!TREE_DIRS[@]}"; do
		cp -a "${TREE_DIRS[$i]}" "$1/${GUESTS[$i]}"
	done
	sync -f "$1"
}
# read_all DIR...: read every byte of every regular file.
read_all() {
	find "$@" -type f -print0 | xargs -0 -r cat >/dev/null
}

# timed ID CMD...: run CMD under /usr/bin/time, its output in logs/ID.log;
# sets T_WALL, T_CPU (user+sys), T_RSS (KiB) and T_RC.
timed() {
	local id=$1 tf=$BENCH_DIR/tmp/time.$1
	shift
	T_RC=0
	"$TIME" -f '%e %U %S %M' -o "$tf" "$@" >"$LOG/$id.log" 2>&1 || T_RC=$?
	read -r T_WALL T_USER T_SYS T_RSS < <(tail -n 1 "$tf")
	T_CPU=$(awk -v u="$T_USER" -v s="$T_SYS" 'BEGIN { printf "%.2f", u + s }')
	if [ "$T_RC" != 0 ]; then
		info "FAILED (exit $T_RC): $*"
		sed 's/^/     | /' "$LOG/$id.log" | tail -n 20 >&2
	fi
}

# The result rows: id, label, wall, cpu, rss KiB, disk bytes, notes.
ROWS=()
# row ID LABEL DISK NOTES: record the last timed run.
row() {
	local notes=$4
	[ "$T_RC" = 0 ] || notes="FAILED exit $T_RC, see $LOG/$1.log; $notes"
	ROWS+=("$1|$2|$T_WALL|$T_CPU|$T_RSS|$3|$notes|$T_USER|$T_SYS")
	info "$2: ${T_WALL} s wall, ${T_CPU} s CPU, $((T_RSS / 1024)) MiB RSS, disk after $(if [ "$3" = - ]; then echo -; else mib "$3"; fi) MiB"
}

# pagecache_measure ID READDIR... -- FSDIR...: drop caches, read every file
# below the READDIRs, report how much the page cache grew (Cached) and how
# much of the files below the FSDIRs is resident (fincore; hard-linked files
# counted once).  Sets PC_CACHED, PC_FINCORE, PC_WALL.
pagecache_measure() {
	local reads=() fss=() c0 c1 t0
	while [ "$1" != -- ]; do
		reads+=("$1")
		shift
	done
	shift
	fss=("$@")
	drop_caches
	sleep 1
	c0=$(cached_bytes)
	t0=$(now)
	read_all "${reads[@]}"
	PC_WALL=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
	c1=$(cached_bytes)
	PC_CACHED=$((c1 - c0))
	PC_FINCORE=$({
		find "${fss[@]}" -xdev -type f -links 1 -print0 | xargs -0 -r fincore -b -n -r -o RES
		find "${fss[@]}" -xdev -type f -links +1 -printf '%i %p\n' | sort -u -k1,1 |
			cut -d' ' -f2- | tr '\n' '\0' | xargs -0 -r fincore -b -n -r -o RES
	} | awk '{ s += $1 } END { printf "%.0f\n", s }')
}
PCROWS=()

# -------------------------------------------------------- plain baselines --

say "Plain copies: read every byte, stat every entry (warm cache)"
fresh_fs a "$IMG_SIZE" "$FSA"
copy_trees "$FSA/plain"
read_all "$FSA/plain"
# shellcheck disable=SC2016 # expanded by the inner shell
timed read-all sh -c 'find "$1" -type f -print0 | xargs -0 cat >/dev/null' sh "$FSA/plain"
READ_WALL=$T_WALL
READ_CPU=$T_CPU
# shellcheck disable=SC2016 # expanded by the inner shell
timed stat-all sh -c 'find "$1" -printf "%s %m\n" >/dev/null' sh "$FSA/plain"
STAT_WALL=$T_WALL
T_WALL=- T_CPU=- T_USER=- T_SYS=- T_RSS=0 T_RC=0
PLAIN_DISK=$(disk_after a "$FSA")
row plain "plain copies (no dedup)" "$PLAIN_DISK" "read all ${READ_WALL} s (CPU ${READ_CPU} s), stat all ${STAT_WALL} s"
info "reading every byte: $READ_WALL s; stat of every entry: $STAT_WALL s"

say "Page cache: $NG plain copies"
pagecache_measure "$FSA/plain" -- "$FSA"
PCROWS+=("plain|$NG plain copies|$PC_CACHED|$PC_FINCORE|$PC_WALL")
info "read in $PC_WALL s; Cached +$(mib "$PC_CACHED") MiB, fincore $(mib "$PC_FINCORE") MiB"

# ------------------------------------------------------------------ peers --

say "hardlink -c"
fresh_fs a "$IMG_SIZE" "$FSA"
copy_trees "$FSA/t"
timed hardlink hardlink -c "$FSA/t"
HARDLINK_WALL=$T_WALL
HARDLINK_CPU=$T_CPU
HARDLINK_RC=$T_RC
row hardlink "hardlink -c" "$(disk_after a "$FSA")" "links equal content, metadata of one copy wins"

say "jdupes -r -L"
fresh_fs a "$IMG_SIZE" "$FSA"
copy_trees "$FSA/t"
timed jdupes jdupes -r -L -q "$FSA/t"
row jdupes "jdupes -r -L" "$(disk_after a "$FSA")" "links equal content"

say "rdfind -makehardlinks true"
fresh_fs a "$IMG_SIZE" "$FSA"
copy_trees "$FSA/t"
timed rdfind rdfind -makehardlinks true -outputname "$BENCH_DIR/tmp/rdfind.txt" "$FSA/t"
row rdfind "rdfind -makehardlinks true" "$(disk_after a "$FSA")" "links equal content"

say "ostree commit (bare repo, one commit per tree)"
fresh_fs a "$IMG_SIZE" "$FSA"
copy_trees "$FSA/t"
ostree --repo="$FSA/repo" init --mode=bare
printf '/dev\n' >"$BENCH_DIR/tmp/ostree-skip" # device nodes: ostree refuses them
# shellcheck disable=SC2016 # expanded by the inner shell
timed ostree sh -c 'r=$1 s=$2; shift 2; n=0
	for t; do n=$((n + 1)); ostree --repo="$r" commit --branch="g$n" --skip-list="$s" --tree=dir="$t" || exit 1; done' \
	sh "$FSA/repo" "$BENCH_DIR/tmp/ostree-skip" "${GUESTS[@]/#/$FSA/t/}"
# Disk after: the repo plus the five trees as hard-link checkouts of it
# (what a deployment keeps; untimed).
if [ "$T_RC" = 0 ]; then
	for g in "${GUESTS[@]}"; do
		rm -rf "${FSA:?}/t/$g"
		ostree --repo="$FSA/repo" checkout -H "$g" "$FSA/t/$g"
	done
fi
row ostree "ostree commit ($NG commits)" "$(disk_after a "$FSA")" "fsync per object (repo default); disk: repo + checkout -H of each (untimed); /dev skipped"

# ------------------------------------------------------------------ floor --

say "Floor: hashing, stub creation in a tmpfs working copy and the image written, the part of a first unify no design of it avoids (tests/tools/opfloor)"
fresh_fs a "$IMG_SIZE" "$FSA"
read_all "${TREE_DIRS[@]}"
timed floor "$OPFLOOR" "$FSA/floor" "${TREE_DIRS[@]}"
FLOOR_WALL=$(sed -n 's/^floor .*wall_s=\([0-9.]*\).*/\1/p' "$LOG/floor.log")
FLOOR_NOTE=$(awk '/^(hash|stubs|image) / { for (i = 2; i <= NF; i++) if ($i ~ /^cpu_s=/) c[$1] = substr($i, 7) }
	END { printf "one thread: hash %s s + stubs on tmpfs %s s + image %s s CPU (no stub inodes on disk: pool format 4)", c["hash"], c["stubs"], c["image"] }' "$LOG/floor.log")
row floor "floor: hash + stubs (tmpfs) + image, 1 thread" - "$FLOOR_NOTE; so no first unify on $(nproc) CPUs beats ${FLOOR_WALL:-?} s"

# ----------------------------------------------------------------- vunify --

# vunify_setup POOL HOMEDIR [INIT ARGS...]: a pool and the five guests added
# (copies of the trees, untimed), read once so the cache is warm.
vunify_setup() {
	local pool=$1 homes=$2 i
	shift 2
	POOL=$pool
	mkdir -p "$homes"
	"$VUNIFY" -p "$pool" init "$@" >"$LOG/init.log" 2>&1 || {
		cat "$LOG/init.log" >&2
		die "vunify -p $pool init $* failed"
	}
	for i in "${!TREE_DIRS[@]}"; do
		"$VUNIFY" -p "$pool" add "${GUESTS[$i]}" "$homes/${GUESTS[$i]}" --from "${TREE_DIRS[$i]}" \
			>>"$LOG/add.log" 2>&1 || {
			tail -n 20 "$LOG/add.log" >&2
			die "vunify add ${GUESTS[$i]} failed"
		}
	done
	sync
	read_all "$homes"
	LAYOUT=$("$VUNIFY" -p "$pool" status --json | sed -n 's/.*"layout" *: *"\([a-z]*\)".*/\1/p')
}
# status_note: objects and bytes saved, from vunify status --json.
status_note() {
	local j objs saved
	j=$("$VUNIFY" -p "$POOL" status --json 2>/dev/null) || {
		echo "status failed"
		return 0
	}
	objs=$(printf '%s' "$j" | sed -n 's/.*"objects" *: *\([0-9]*\).*/\1/p')
	saved=$(printf '%s' "$j" | sed -n 's/.*"saved_bytes" *: *\([0-9]*\).*/\1/p')
	echo "${objs:-?} objects, saved $(mib "${saved:-0}") MiB (status)"
}

say "vunify, pool and homes on one filesystem (layout auto)"
fresh_fs a "$IMG_SIZE" "$FSA"
vunify_setup "$FSA/pool" "$FSA/h"
AUTO_LAYOUT=$LAYOUT
info "layout: $AUTO_LAYOUT"
timed vunify-first env VUNIFY_TIMING=1 "$VUNIFY" -p "$POOL" unify
UNIFY_WALL=$T_WALL
UNIFY_CPU=$T_CPU
UNIFY_RC=$T_RC
row vunify-first "vunify unify, first ($AUTO_LAYOUT)" "$(disk_after a "$FSA")" "one fs; $(status_note)"
timed vunify-again "$VUNIFY" -p "$POOL" unify
row vunify-again "vunify unify, no change ($AUTO_LAYOUT)" "$(disk_after a "$FSA")" "one fs, second run"

say "Page cache: the $NG guests mounted ($AUTO_LAYOUT)"
for g in "${GUESTS[@]}"; do
	mkdir -p "$MNT/$g"
	"$VUNIFY" -p "$POOL" mount "$g" "$MNT/$g" >"$LOG/mount-$g.log" 2>&1 || {
		cat "$LOG/mount-$g.log" >&2
		die "vunify mount $g failed"
	}
done
pagecache_measure "${GUESTS[@]/#/$MNT/}" -- "$FSA"
PCROWS+=("vunify|$NG vunify guests ($AUTO_LAYOUT)|$PC_CACHED|$PC_FINCORE|$PC_WALL")
info "read in $PC_WALL s; Cached +$(mib "$PC_CACHED") MiB, fincore $(mib "$PC_FINCORE") MiB"
# vunify's own figure: the pool's objects only (files left in the uppers
# are not in it).
VU_MEM=""
if mj=$("$VUNIFY" -p "$POOL" status --memory --json 2>/dev/null); then
	VU_MEM_CACHED=$(printf '%s' "$mj" | sed -n 's/.*"cached_bytes" *: *\([0-9]*\).*/\1/p')
	VU_MEM_SHARED=$(printf '%s' "$mj" | sed -n 's/.*"shared_cached_bytes" *: *\([0-9]*\).*/\1/p')
	VU_MEM_METHOD=$(printf '%s' "$mj" | sed -n 's/.*"method" *: *"\([a-z]*\)".*/\1/p')
	[ -z "$VU_MEM_CACHED" ] ||
		VU_MEM="vunify status --memory ($VU_MEM_METHOD): objects $(mib "$VU_MEM_CACHED") MiB cached, $(mib "${VU_MEM_SHARED:-0}") MiB of it in objects shared by 2+ guests"
fi
[ -z "$VU_MEM" ] || info "$VU_MEM"
umount_guests

if [ "$AUTO_LAYOUT" != link ]; then
	say "vunify, link layout, pool and homes on one filesystem"
	fresh_fs a "$IMG_SIZE" "$FSA"
	vunify_setup "$FSA/pool" "$FSA/h" --layout link
	timed vunify-link "$VUNIFY" -p "$POOL" unify
	row vunify-link "vunify unify, first (link)" "$(disk_after a "$FSA")" "one fs; $(status_note)"
fi

say "vunify, pool on a second filesystem (layout auto)"
fresh_fs a "$IMG_SIZE" "$FSA"
fresh_fs b "$POOL_SIZE" "$FSB"
vunify_setup "$FSB/pool" "$FSA/h"
timed vunify-cross env VUNIFY_TIMING=1 "$VUNIFY" -p "$POOL" unify
CROSS_WALL=$T_WALL
CROSS_CPU=$T_CPU
CROSS_RC=$T_RC
da=$(disk_after a "$FSA")
db=$(disk_after b "$FSB")
row vunify-cross "vunify unify, cross-fs ($LAYOUT)" $((da + db)) \
	"homes $(mib "$da") + pool $(mib "$db") MiB on another fs; $(status_note)"
# What copying the new content into the pool costs by itself: the pool's
# objects (exactly the unique content) copied to the other filesystem.
# shellcheck disable=SC2016 # expanded by the inner shell
timed copy-unique sh -c 'cp -r "$1" "$2" && sync -f "$2"' sh "$FSB/pool/objects" "$FSA/copy-unique"
COPY_WALL=$T_WALL
COPY_CPU=$T_CPU
COPY_RC=$T_RC
row copy-unique "cp -r of the unique content + sync" - "the pool's objects to the other fs: the copy cross-fs unify must make"

umount_guests
POOL=""
release_image "$IMG/a.img"
release_image "$IMG/b.img"

# ----------------------------------------------------------------- report --

TOTAL_WALL=$(awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
{
	echo
	printf 'vunify bench: %d guests (%s), %d regular files, %s MiB; %s CPUs, kernel %s\n' \
		"$NG" "$TREES" "$N_FILES" "$(mib "$N_BYTES")" "$(nproc)" "$(uname -r)"
	printf 'one ext4 (-I 512) on a loop device, warm page cache; reading every byte %s s, stat of every entry %s s\n\n' \
		"$READ_WALL" "$STAT_WALL"
	printf '%-36s %8s %8s %9s %10s  %s\n' tool "wall s" "CPU s" "RSS MiB" "disk MiB" notes
	for r in "${ROWS[@]}"; do
		IFS='|' read -r _ label wall cpu rss disk notes _ <<<"$r"
		printf '%-36s %8s %8s %9s %10s  %s\n' "$label" "$wall" "$cpu" \
			"$(awk -v k="$rss" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else printf "-" }')" \
			"$(if [ "$disk" = - ]; then echo -; else mib "$disk"; fi)" "$notes"
	done
	printf '%-36s %8s %8s %9s %10s  %s\n' "ideal (unique content)" - - - "$(mib "$U_BYTES")" \
		"$U_FILES distinct non-empty contents"
	echo
	if [ "$UNIFY_RC" = 0 ]; then
		awk -v n="$N_FILES" -v b="$N_BYTES" -v w="$UNIFY_WALL" 'BEGIN {
			printf "vunify first unify: %.0f files/s, %.1f MB/s (%d files, %.1f MB in %s s)\n",
				n / w, b / 1e6 / w, n, b / 1e6, w }'
	else
		echo "vunify first unify: failed, no rate"
	fi
	# issue 9's goals 2 and 3, side by side from this run
	if [ "$UNIFY_RC" = 0 ] && [ "$HARDLINK_RC" = 0 ]; then
		awk -v u="$UNIFY_WALL" -v h="$HARDLINK_WALL" -v uc="$UNIFY_CPU" -v hc="$HARDLINK_CPU" -v l="$AUTO_LAYOUT" 'BEGIN {
			printf "first unify (%s, one fs) vs hardlink -c on the same trees: %s s vs %s s = %.2fx (goal <= 0.5x); CPU %s s vs %s s = %.2fx\n",
				l, u, h, u / h, uc, hc, uc / hc }'
	else
		echo "first unify vs hardlink -c: a run failed, no ratio"
	fi
	if [ "$CROSS_RC" = 0 ] && [ "$COPY_RC" = 0 ]; then
		awk -v u="$CROSS_WALL" -v c="$COPY_WALL" -v uc="$CROSS_CPU" -v cc="$COPY_CPU" 'BEGIN {
			printf "cross-fs first unify vs cp -r + sync of the unique content: %s s vs %s s = %.2fx (goal <= 1.3x); CPU %s s vs %s s\n",
				u, c, u / c, uc, cc }'
	else
		echo "cross-fs first unify vs cp + sync: a run failed, no ratio"
	fi
	for id in vunify-first vunify-cross; do
		printf '%s phases (VUNIFY_TIMING):' "$id"
		awk '/^(scan|hash|decide|store) [0-9.]+$/ { printf " %s %s s", $1, $2 }
			/^cpu (scan|hash|decide|store) [0-9.]+$/ { printf " (CPU %s s)", $3 }' "$LOG/$id.log"
		echo
	done
	echo
	echo "page cache after dropping caches and reading every file of every guest"
	printf '%-36s %12s %12s %8s %8s %8s\n' "" "Cached MiB" "fincore MiB" "% bytes" "% pages" "read s"
	for r in "${PCROWS[@]}"; do
		IFS='|' read -r _ label cached fin wall <<<"$r"
		printf '%-36s %12s %12s %8s %8s %8s\n' "$label" "$(mib "$cached")" "$(mib "$fin")" \
			"$(awk -v f="$fin" -v u="$U_BYTES" 'BEGIN { printf "%.1f%%", 100 * f / u }')" \
			"$(awk -v f="$fin" -v u="$U_PAGES" 'BEGIN { printf "%.1f%%", 100 * f / u }')" "$wall"
	done
	printf '%-36s %12s %12s %8s %8s\n' "ideal (unique content bytes)" - "$(mib "$U_BYTES")" "100%" \
		"$(awk -v f="$U_BYTES" -v u="$U_PAGES" 'BEGIN { printf "%.1f%%", 100 * f / u }')"
	printf '%-36s %12s %12s %8s %8s\n' "ideal, in whole 4 KiB pages" - "$(mib "$U_PAGES")" \
		"$(awk -v f="$U_PAGES" -v u="$U_BYTES" 'BEGIN { printf "%.1f%%", 100 * f / u }')" "100%"
	echo "(Cached: growth of Cached in /proc/meminfo, whole machine, other processes included;"
	echo " fincore: resident pages of every file on the guests' filesystem, hard links once;"
	echo " % bytes, % pages: fincore against the unique content in bytes, and in whole pages,"
	echo " which is the least any page cache can hold: a file's last page is cached whole)"
	[ -z "$VU_MEM" ] || echo "$VU_MEM"
	echo
	echo "whole benchmark: $TOTAL_WALL s; logs in $LOG"
} | tee "$LOG/report.txt"

# Machine-readable: one line per measurement, key=value.
{
	printf 'bench date=%s kernel=%s cpus=%s guests=%s files=%s bytes=%s unique_files=%s unique_bytes=%s unique_page_bytes=%s total_s=%s\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -r)" "$(nproc)" "$NG" "$N_FILES" "$N_BYTES" \
		"$U_FILES" "$U_BYTES" "$U_PAGES" "$TOTAL_WALL"
	printf 'baseline read_all_s=%s stat_all_s=%s\n' "$READ_WALL" "$STAT_WALL"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r id _ wall cpu rss disk _ user sys <<<"$r"
		printf 'tool id=%s wall_s=%s cpu_s=%s user_s=%s sys_s=%s rss_kib=%s disk_bytes=%s\n' \
			"$id" "$wall" "$cpu" "$user" "$sys" "$rss" "$disk"
	done
	if [ "$UNIFY_RC" = 0 ]; then
		awk -v n="$N_FILES" -v b="$N_BYTES" -v w="$UNIFY_WALL" 'BEGIN {
			printf "rate id=vunify-first files_per_s=%.0f mb_per_s=%.1f\n", n / w, b / 1e6 / w }'
	fi
	for r in "${PCROWS[@]}"; do
		IFS='|' read -r id _ cached fin wall <<<"$r"
		printf 'pagecache id=%s cached_bytes=%s fincore_bytes=%s read_s=%s\n' "$id" "$cached" "$fin" "$wall"
	done
	printf 'pagecache id=ideal fincore_bytes=%s page_bytes=%s\n' "$U_BYTES" "$U_PAGES"
	[ -z "$VU_MEM" ] ||
		printf 'pagecache id=vunify-status method=%s objects_cached_bytes=%s shared_cached_bytes=%s\n' \
			"$VU_MEM_METHOD" "$VU_MEM_CACHED" "${VU_MEM_SHARED:-0}"
	printf 'layout auto=%s\n' "$AUTO_LAYOUT"
	[ "$UNIFY_RC" != 0 ] || [ "$HARDLINK_RC" != 0 ] ||
		awk -v u="$UNIFY_WALL" -v h="$HARDLINK_WALL" 'BEGIN { printf "ratio id=first-vs-hardlink value=%.3f goal=0.5\n", u / h }'
	[ "$CROSS_RC" != 0 ] || [ "$COPY_RC" != 0 ] ||
		awk -v u="$CROSS_WALL" -v c="$COPY_WALL" 'BEGIN { printf "ratio id=cross-vs-copy value=%.3f goal=1.3\n", u / c }'
} >"$OUT"
echo "machine-readable: $OUT"

if [ "${BENCH_RUNTIME:-1}" != 0 ]; then
	say "Runtime of the guests' own programs (scripts/bench-runtime.sh)"
	BENCH_BUILD=$BUILD_DIR VUNIFY=$VUNIFY BENCH_RT_OUT=$BUILD_DIR/bench-runtime.txt \
		"$here/scripts/bench-runtime.sh" || die "scripts/bench-runtime.sh failed"
fi
