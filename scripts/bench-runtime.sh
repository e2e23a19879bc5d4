#!/bin/bash
# vunify runtime benchmark: what a guest's own programs pay for running on
# a unified guest, cold (caches dropped) and warm, against the same tree as
# a plain directory.  Needs root (loop device, mounts, drop_caches, chroot).
# Run by `make bench` after scripts/bench.sh, or by itself:
#
#   scripts/bench-runtime.sh            run it; prints one table
#   scripts/bench-runtime.sh --clean    unmount and delete a left-over work area
#
# One ext4 (-I 512) on a direct-I/O loop device holds everything.  The
# measured guest is the first tree (default bookworm-web: nginx-light and
# python3); the other trees are unified into the same pool beside it, so
# its objects sit among other guests' objects as in a real pool.
# Variants, each the same guest:
#   plain     the tree copied to a directory, chroot into it
#   stubs     redirect layout, metadata layer HOME/meta (one stub inode per
#             file), as vunify mounts a guest that has no image
#   image     redirect layout as vunify mounts it: HOME/meta.img, the stubs
#             packed into one EROFS image by vunify's own writer, mounted
#             from the file (no loop device), read ahead whole at mount
#   stubs-skel, image-skel  the same two with the guest's directory
#             skeleton and symlinks back in the upper (what unify moves
#             to the lower layer: lib/prune.h), as vunify left a guest
#             before it did
#   image-nora the same image mounted without that read-ahead
#   mkfs      HOME/meta packed by mkfs.erofs --chunksize=4096 (erofs-utils;
#             the probe of issue 9), mounted the same way, when installed
#   link      link layout (POOL/roots/GUEST lower) as vunify mounts it
#   link-skel the same with the guest's directory skeleton and symlinks
#             back in the upper (what unify moves into POOL/roots/GUEST),
#             as vunify left a link guest before it pruned that layout
#   ovl       the plain tree itself as the only lower layer of a read-only
#             overlay, no vunify at all: what overlayfs alone costs, the
#             floor under any overlay design (vunify's, composefs's)
#   full      composefs-style, as a measure of what vunify could do next:
#             the guest's whole tree (directories, symlinks, every
#             attribute) in one EROFS image with each pooled file a stub
#             (tests/tools/erofs-compose), read ahead at mount, and an
#             upper holding only the files the pool does not have
# A cold run is a cold start: the variant unmounted, caches dropped, then
# (timed) mounted as above and the program run, as after a reboot or a
# failover.  Warm runs reuse the mount.
# Measurements, each the median of RUNS runs: stat walk `find / -xdev
# -printf %s`, `dpkg --verify` (reads and md5s every packaged file), python3
# importing json, email, asyncio and http.client; all run by chroot into
# the guest's root.  Besides wall time: CPU time (user+sys) and the reads
# the filesystem's device served, which do not change with the load on a
# shared machine.
#
# Environment:
#   BENCH_DIR     work area        (default /var/tmp/vunify-bench-rt)
#   BENCH_BUILD   build directory  (default build-release of this repo)
#   VUNIFY        vunify binary    (default $BENCH_BUILD/vunify)
#   BENCH_TREES   tree names, the measured guest first
#                 (default: bookworm-web bookworm-minbase)
#   RUNS          runs per cold figure (default 3)
#   WARM_RUNS     runs per warm figure (default 9: a warm run is short, so
#                 its median needs more of them to settle)
#   VARIANTS      which variants   (default: plain ovl stubs image stubs-skel image-skel link;
#                 also: image-nora mkfs full link-skel)
#   BENCH_RT_OUT  machine-readable result (default $BENCH_BUILD/bench-runtime.txt)
set -eu
set -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BENCH_BUILD:-$here/build-release}
VUNIFY=${VUNIFY:-$BUILD_DIR/vunify}
EROFS_META=${EROFS_META:-$BUILD_DIR/tools/erofs-meta}
BENCH_DIR=${BENCH_DIR:-/var/tmp/vunify-bench-rt}
TREES=${BENCH_TREES:-bookworm-web bookworm-minbase}
RUNS=${RUNS:-3}
WARM_RUNS=${WARM_RUNS:-9}
VARIANTS=${VARIANTS:-plain ovl stubs image stubs-skel image-skel link}
OUT=${BENCH_RT_OUT:-$BUILD_DIR/bench-runtime.txt}

say() { printf '== %s\n' "$*" >&2; }
info() { printf '   %s\n' "$*" >&2; }
die() {
	printf 'bench-runtime: %s\n' "$*" >&2
	exit 1
}

mode=run
case ${1:-} in
"") ;;
--clean) mode=clean ;;
*)
	sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
case $BENCH_DIR in
/?*) ;;
*) die "BENCH_DIR must be an absolute path other than /: $BENCH_DIR" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (loop device, mounts, drop_caches)"

FS=$BENCH_DIR/fs
MNT=$BENCH_DIR/mnt
IMGFILE=$BENCH_DIR/fs.img

mounts_below() {
	findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1' | tac
}
cleanup() {
	local t dev
	[ -e "$BENCH_DIR" ] || return 0
	for t in $(mounts_below "$BENCH_DIR"); do
		umount "$t" 2>/dev/null || umount -l "$t"
	done
	if [ -e "$IMGFILE" ]; then
		for dev in $(losetup --list -n -O NAME -j "$IMGFILE"); do losetup -d "$dev"; done
	fi
	rm -rf --one-file-system "$BENCH_DIR"
}
if [ "$mode" = clean ]; then
	cleanup
	exit 0
fi
[ -x "$VUNIFY" ] || die "no vunify binary at $VUNIFY (make bench builds it)"
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
mkdir -p "$FS" "$MNT"

# shellcheck disable=SC2086 # the list of names is split on purpose
tree_out=$("$here/scripts/debian-trees.sh" $TREES) || die "scripts/debian-trees.sh $TREES failed"
mapfile -t TREE_DIRS <<<"$tree_out"
say "guest measured: ${TREE_DIRS[0]}; ${#TREE_DIRS[@]} trees in the pool"

truncate -s 6G "$IMGFILE"
mkfs.ext4 -q -F -I 512 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$IMGFILE"
DEV=$(losetup --direct-io=on -f --show "$IMGFILE")
mount -o noinit_itable "$DEV" "$FS"
DEVSTAT=/sys/block/${DEV#/dev/}/stat

now() { date +%s.%N; }
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}
# one_run ROOT WHAT [VARIANT]: one run of WHAT in ROOT, after mounting
# VARIANT (timed with it) when given; prints "wall cpu reads MiB":
# wall seconds, user+system CPU seconds, and the read requests and MiB the
# guests' filesystem's loop device served meanwhile (everything of a guest
# lives there: plain tree, homes, pool, images).  CPU and reads do not
# depend on what else the machine does; wall does.
one_run() {
	local t0 t1 s0 s1 cmd
	case $2 in
	walk) cmd=(find / -xdev -printf %s) ;;
	dpkg) cmd=(dpkg --verify) ;;
	python) cmd=(python3 -c 'import json,email,asyncio,http.client') ;;
	esac
	read -r -a s0 <"$DEVSTAT"
	t0=$(now)
	if [ -n "${3:-}" ]; then vmount "$3"; fi
	/usr/bin/time -f '%U %S' -o "$BENCH_DIR/time" chroot "$1" "${cmd[@]}" >/dev/null 2>&1 || true
	t1=$(now)
	read -r -a s1 <"$DEVSTAT"
	awk -v a="$t0" -v b="$t1" -v t="$(tail -n 1 "$BENCH_DIR/time")" -v r=$((s1[0] - s0[0])) -v sec=$((s1[2] - s0[2])) \
		'BEGIN { split(t, c, " "); printf "%.3f %.2f %d %.1f\n", b - a, c[1] + c[2], r, sec / 2048 }'
}
# median and min of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { sort -n | head -n 1; }
declare -A RES
ROOTS=()
DONE=()
# variant NAME ROOT: measure ROOT as NAME (after a check that it shows the
# guest as the plain tree does).
variant() {
	check_same "$1" "$2"
	DONE+=("$1")
	ROOTS+=("$2")
}
# ovl_mount NAME GUEST IMAGE: IMAGE as GUEST's metadata layer, mounted as
# vunify mounts HOME/meta.img but without its read-ahead of the image.
ovl_mount() {
	local h=$FS/rh/$2
	mkdir -p "$MNT/$1.lower" "$MNT/$1"
	# mount(2) of the file itself: no loop device (mount(8) would add one)
	"$EROFS_META" --mount "$3" "$MNT/$1.lower"
	mount -t overlay -o "lowerdir=$MNT/$1.lower::$FS/rpool/objects,upperdir=$h/upper,workdir=$h/work,redirect_dir=off,index=off,xino=off,metacopy=off" \
		vunify "$MNT/$1"
}
# vmount NAME / vumount NAME: mount and unmount a variant.
vmount() {
	case $1 in
	plain) ;;
	ovl) mount -t overlay -o "lowerdir=$FS/ovl.empty:$FS/plain" overlay "$MNT/ovl" ;;
	stubs) "$VUNIFY" -p "$FS/rpool" mount g0 "$MNT/stubs" ;;
	image) "$VUNIFY" -p "$FS/rpool" mount g1 "$MNT/image" ;;
	image-skel) "$VUNIFY" -p "$FS/rpool" mount g4 "$MNT/image-skel" ;;
	stubs-skel) "$VUNIFY" -p "$FS/rpool" mount g5 "$MNT/stubs-skel" ;;
	image-nora) ovl_mount image-nora g2 "$FS/rh/g2/meta.img" ;;
	mkfs) ovl_mount mkfs g3 "$FS/g3.mkfs.img" ;;
	full)
		mkdir -p "$MNT/full.lower"
		"$EROFS_META" --mount-ra "$FS/full.img" "$MNT/full.lower"
		mount -t overlay -o "lowerdir=$MNT/full.lower::$FS/rpool/objects,upperdir=$FS/full/upper,workdir=$FS/full/work,redirect_dir=off,index=off,xino=off,metacopy=off" \
			vunify "$MNT/full"
		;;
	link) "$VUNIFY" -p "$FS/lpool" mount g0 "$MNT/link" ;;
	link-skel) "$VUNIFY" -p "$FS/lpool" mount g1 "$MNT/link-skel" ;;
	esac
}
vumount() {
	case $1 in
	plain) ;;
	image-nora | mkfs | full)
		umount "$MNT/$1"
		umount "$MNT/$1.lower"
		;;
	*) umount "$MNT/$1" ;;
	esac
}
# Cold runs interleave (run 1 of each variant, then run 2 of each, ...),
# so that load from elsewhere on the machine spreads over all variants
# instead of landing on one.
measure_all() {
	local w i k v f t
	declare -A T
	for w in walk dpkg python; do
		for i in $(seq 1 "$RUNS"); do
			for k in "${!DONE[@]}"; do
				v=${DONE[$k]}
				vumount "$v"
				drop_caches
				T[$v.$w.cold]+="$(one_run "${ROOTS[$k]}" "$w" "$v")
"
			done
		done
		for k in "${!DONE[@]}"; do one_run "${ROOTS[$k]}" "$w" >/dev/null; done
		for i in $(seq 1 "$WARM_RUNS"); do
			for k in "${!DONE[@]}"; do
				T[${DONE[$k]}.$w.warm]+="$(one_run "${ROOTS[$k]}" "$w")
"
			done
		done
		for v in "${DONE[@]}"; do
			for t in cold warm; do
				for f in 1 2 3 4; do
					RES[$v.$w.$t.$f]=$(printf '%s' "${T[$v.$w.$t]}" | awk -v f=$f 'NF { print $f }' | median)
				done
				RES[$v.$w.$t]=${RES[$v.$w.$t.1]}
				RES[$v.$w.$t.min]=$(printf '%s' "${T[$v.$w.$t]}" | awk 'NF { print $1 }' | minimum)
			done
			info "$v $w: cold ${RES[$v.$w.cold]} s (min ${RES[$v.$w.cold.min]}, CPU ${RES[$v.$w.cold.2]} s, ${RES[$v.$w.cold.3]} reads, ${RES[$v.$w.cold.4]} MiB), warm ${RES[$v.$w.warm]} s (CPU ${RES[$v.$w.warm.2]} s)"
		done
	done
}

# A sanity check that each variant shows the guest: the same file count
# and the same dpkg --verify output as the plain tree.
check_same() {
	local n
	n=$(chroot "$2" find / -xdev | wc -l)
	[ "$n" = "$PLAIN_N" ] || die "$1: $n entries, plain tree has $PLAIN_N"
	chroot "$2" dpkg --verify >"$BENCH_DIR/verify.$1" 2>&1 || true
	cmp -s "$BENCH_DIR/verify.plain" "$BENCH_DIR/verify.$1" || die "$1: dpkg --verify differs from the plain tree"
}

say "plain copy"
cp -a "${TREE_DIRS[0]}" "$FS/plain"
PLAIN_N=$(chroot "$FS/plain" find / -xdev | wc -l)
chroot "$FS/plain" dpkg --verify >"$BENCH_DIR/verify.plain" 2>&1 || true
want() { case " $VARIANTS " in *" $1 "*) return 0 ;; esac; return 1; }
if want plain; then variant plain "$FS/plain"; fi
if want ovl; then
	mkdir -p "$FS/ovl.empty" "$MNT/ovl"
	vmount ovl
	variant ovl "$MNT/ovl"
fi

# pool POOL HOMES N [INIT ARGS]: a pool with the measured tree added N
# times (g0..: one guest per variant, each with its own upper) and every
# other tree once, all unified.
pool() {
	local p=$1 h=$2 n=$3 i
	shift 3
	"$VUNIFY" -p "$p" init "$@" >/dev/null
	for i in $(seq 0 $((n - 1))); do
		"$VUNIFY" -p "$p" add "g$i" "$h/g$i" --from "${TREE_DIRS[0]}" >/dev/null
	done
	for i in "${!TREE_DIRS[@]}"; do
		[ "$i" = 0 ] || "$VUNIFY" -p "$p" add "o$i" "$h/o$i" --from "${TREE_DIRS[$i]}" >/dev/null
	done
	"$VUNIFY" -p "$p" unify >/dev/null
	sync
}

if want stubs || want image || want image-nora || want mkfs || want stubs-skel || want image-skel || want full; then
	say "redirect layout pool"
	pool "$FS/rpool" "$FS/rh" 6 --layout redirect
	[ -f "$FS/rh/g1/meta.img" ] || die "unify wrote no HOME/meta.img (this vunify has no metadata image)"
	# Pool format 4 keeps no stubs on disk (the image is the record):
	# the stub variants get them written out from each image, as a
	# format-3 home has them (beside an image they are not used; g0 and
	# g5 lose their image below and are mounted from them).
	for i in 0 1 2 3 4 5; do
		[ -d "$FS/rh/g$i/meta" ] && continue
		mkdir -p "$FS/img.mnt"
		mount -t erofs -o ro "$FS/rh/g$i/meta.img" "$FS/img.mnt" || die "mount g$i's image"
		cp -a --sparse=always "$FS/img.mnt" "$FS/rh/g$i/meta" || die "write out g$i's stubs"
		umount "$FS/img.mnt"
	done
	info "HOME/meta.img: $(stat -c %s "$FS/rh/g1/meta.img") bytes for $(find "$FS/rh/g1/meta" | wc -l) entries of HOME/meta"
	info "upper of a unified guest: $(find "$FS/rh/g1/upper" -type d | wc -l) directories, $(find "$FS/rh/g1/upper" -type l | wc -l) symlinks, $(find "$FS/rh/g1/upper" -type f | wc -l) files; the tree: $(find "$FS/plain" -type d | wc -l) directories, $(find "$FS/plain" -type l | wc -l) symlinks"
	# g0 and g5 without their image: vunify mounts the stubs
	rm "$FS/rh/g0/meta.img" "$FS/rh/g5/meta.img"
	# g4 and g5 with the directory skeleton and the symlinks back in the
	# upper, as unify left a guest before lib/prune.c: every directory
	# and symlink, with the attributes meta/ carries for them
	for i in 4 5; do
		rsync -aAX --numeric-ids --ignore-existing -f'+ */' -f'- *' "$FS/rh/g$i/meta/" "$FS/rh/g$i/upper/"
		(cd "$FS/rh/g$i/meta" && find . -type l -printf '%P\0') |
			rsync -aAX --numeric-ids --ignore-existing --from0 --files-from=- "$FS/rh/g$i/meta/" "$FS/rh/g$i/upper/"
	done
	for v in stubs image stubs-skel image-skel image-nora mkfs full; do
		want "$v" || continue
		if [ "$v" = full ]; then
			[ -x "$BUILD_DIR/tools/erofs-compose" ] || die "no $BUILD_DIR/tools/erofs-compose (make bench builds it)"
			info "full: $("$BUILD_DIR/tools/erofs-compose" "$FS/plain" "$FS/rpool/objects" "$FS/full.img" "$BENCH_DIR/full.list")"
			mkdir -p "$FS/full/upper" "$FS/full/work"
			(cd "$FS/plain" && xargs -0 -r cp -a --parents -t "$FS/full/upper" <"$BENCH_DIR/full.list")
			info "full image: $(stat -c %s "$FS/full.img") bytes; upper: $(find "$FS/full/upper" | wc -l) entries"
		fi
		if [ "$v" = mkfs ]; then
			command -v mkfs.erofs >/dev/null || continue
			# mkfs.erofs 1.5 fails with EIO writing its image straight
			# onto the loop-mounted ext4 here: written elsewhere, copied.
			if ! mkfs.erofs --quiet --chunksize=4096 "$BENCH_DIR/g3.mkfs.img" "$FS/rh/g3/meta" \
				>"$BENCH_DIR/mkfs.log" 2>&1 || ! cp "$BENCH_DIR/g3.mkfs.img" "$FS/g3.mkfs.img"; then
				info "mkfs.erofs failed, no mkfs column: $(tail -n 1 "$BENCH_DIR/mkfs.log")"
				continue
			fi
			rm -f "$BENCH_DIR/g3.mkfs.img"
			info "mkfs.erofs image: $(stat -c %s "$FS/g3.mkfs.img") bytes"
		fi
		case $v in image-nora | mkfs | full)
			[ -x "$EROFS_META" ] || die "no $EROFS_META (make bench builds it)"
			;;
		esac
		mkdir -p "$MNT/$v"
		vmount "$v"
		variant "$v" "$MNT/$v"
	done
fi

if want link || want link-skel; then
	say "link layout pool"
	pool "$FS/lpool" "$FS/lh" 2 --layout link
	info "upper of a unified link guest: $(find "$FS/lh/g0/upper" -type d | wc -l) directories, $(find "$FS/lh/g0/upper" -type l | wc -l) symlinks, $(find "$FS/lh/g0/upper" -type f | wc -l) files"
	# g1 with the directory skeleton and the symlinks back in the upper,
	# from POOL/roots/g1, which carries their attributes
	rsync -aAX --numeric-ids --ignore-existing -f'+ */' -f'- *' "$FS/lpool/roots/g1/" "$FS/lh/g1/upper/"
	(cd "$FS/lpool/roots/g1" && find . -type l -printf '%P\0') |
		rsync -aAX --numeric-ids --ignore-existing --from0 --files-from=- "$FS/lpool/roots/g1/" "$FS/lh/g1/upper/"
	for v in link link-skel; do
		want "$v" || continue
		mkdir -p "$MNT/$v"
		vmount "$v"
		variant "$v" "$MNT/$v"
	done
fi

say "measuring: ${DONE[*]}"
measure_all

# ratio A B: "A (A/Bx)"
ratio() { awk -v a="$1" -v p="$2" 'BEGIN { if (p > 0) printf "%s (%.2fx)", a, a / p; else printf "%s", a }'; }
{
	echo
	printf 'runtime of the guest %s, chroot into each variant; median of %s cold and %s warm runs, interleaved;\n' \
		"${TREE_DIRS[0]##*/}" "$RUNS" "$WARM_RUNS"
	printf 'cold = unmounted, caches dropped, then mount + run timed; (x) = ratio to plain;\n'
	printf 'kernel %s, %s CPUs, load %s\n' \
		"$(uname -r)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '%-30s' ""
	for v in "${DONE[@]}"; do printf '%18s' "$v"; done
	echo
	for w in walk dpkg python; do
		case $w in
		walk) label="stat walk" ;;
		dpkg) label="dpkg --verify" ;;
		python) label="python3 imports" ;;
		esac
		for row in "cold.1|cold $label, wall s" "cold.min|  fastest cold run, s" "cold.2|  CPU s (user+sys)" \
			"cold.3|  read requests" "cold.4|  MiB read" "warm.1|warm $label, wall s" "warm.2|  CPU s (user+sys)"; do
			key=${row%%|*}
			printf '%-30s' "${row#*|}"
			for v in "${DONE[@]}"; do
				if [ "$v" = plain ] || [ -z "${RES[plain.$w.$key]:-}" ]; then
					printf '%18s' "${RES[$v.$w.$key]}"
				else
					printf '%18s' "$(ratio "${RES[$v.$w.$key]}" "${RES[plain.$w.$key]}")"
				fi
			done
			echo
		done
	done
	# issue 9, goal 1: the ratios to the plain tree, wall time, this run
	goal() { # LABEL VARIANT KEY LIMIT
		[ -n "${RES[$2.$3]:-}" ] && [ -n "${RES[plain.$3]:-}" ] || return 0
		awk -v l="$1" -v v="$2" -v a="${RES[$2.$3]}" -v p="${RES[plain.$3]}" -v m="$4" 'BEGIN {
			r = a / p; printf "  %-26s %-12s %5.2fx  (goal <= %.2fx: %s)\n", l, v, r, m, r <= m ? "met" : "NOT met" }'
	}
	echo
	echo "issue 9 goal 1 (runtime), median wall time against the plain tree, this run:"
	for v in image stubs image-skel stubs-skel link link-skel ovl; do
		goal "cold stat walk" "$v" walk.cold 1.5
		goal "cold dpkg --verify" "$v" dpkg.cold 1.2
		goal "warm stat walk" "$v" walk.warm 1.05
		goal "warm dpkg --verify" "$v" dpkg.warm 1.05
	done
	# the same warm runs, CPU time, and against the overlay floor: how much
	# of the warm cost is overlayfs itself rather than vunify's layers
	if [ -n "${RES[ovl.walk.warm.2]:-}" ]; then
		echo
		echo "warm CPU time (user+sys) against the plain tree and against ovl (overlayfs alone):"
		for v in image stubs link link-skel ovl; do
			for w in walk dpkg; do
				[ -n "${RES[$v.$w.warm.2]:-}" ] || continue
				awk -v v="$v" -v w="$w" -v a="${RES[$v.$w.warm.2]}" -v p="${RES[plain.$w.warm.2]}" -v o="${RES[ovl.$w.warm.2]}" \
					'BEGIN { printf "  %-6s %-12s CPU %5.2fx plain  %5.2fx ovl\n", w, v, (p > 0 ? a / p : 0), (o > 0 ? a / o : 0) }'
			done
		done
	fi
} | tee "$BENCH_DIR/report.txt"
{
	for k in "${!RES[@]}"; do printf 'runtime %s=%s\n' "$k" "${RES[$k]}"; done | sort
} >"$OUT"
echo "machine-readable: $OUT"
