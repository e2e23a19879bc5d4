# shellcheck shell=bash
# The preamble scripts/bench.sh, scripts/bench-scale.sh and scripts/demo.sh
# share; sourced, never run.  It defines functions and sets PROG, nothing
# else: each script keeps its own settings, work area and steps.
#
#   PROG              the script's name without .sh, in messages
#   say/info/die      progress on stderr; die exits 1 with "PROG: ..."
#   usage             the script's header comment (line 2 to `set -eu`)
#   parse_mode        the one optional argument: none, --clean, --help
#   check_work_dir    a work area variable made safe to rm -rf below
#   need_root, need_commands, now, mib, used_bytes
#   mounts_below      what is mounted at or below a directory
#   release_image     unmount and detach an image's loop devices, delete it
#   loop_ext4         an image file made a fresh loop-mounted ext4

PROG=$(basename "$0" .sh)

say() { printf '== %s\n' "$*" >&2; }
info() { printf '   %s\n' "$*" >&2; }
die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}
usage() { sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'; }

# parse_mode DEFAULT [ARG]: sets mode to DEFAULT without ARG, to clean
# with --clean; --help prints usage and exits 0; anything else (or more
# than one argument) prints usage to stderr and exits 2.
# shellcheck disable=SC2034 # mode is read by the sourcing script
parse_mode() {
	local default=$1
	shift
	if [ $# -gt 1 ]; then
		usage >&2
		exit 2
	fi
	case ${1:-} in
	"") mode=$default ;;
	--clean) mode=clean ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

# check_work_dir VAR: the directory in variable VAR (its name is also the
# setting's name in messages) must be absolute and not /; VAR is set to
# its canonical form, which cleanup then removes below.
check_work_dir() {
	local dir=${!1}
	case $dir in
	/*) ;;
	*) die "$1 must be an absolute path: $dir" ;;
	esac
	dir=$(realpath -m "$dir")
	[ "$dir" != / ] || die "$1 must not be /"
	printf -v "$1" '%s' "$dir"
}

# need_root WHY: die unless root.
need_root() { [ "$(id -u)" = 0 ] || die "must run as root ($1)"; }

# need_commands CMD...: die naming the first CMD that is not installed.
need_commands() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || die "missing command: $c (scripts/deps.sh)"
	done
}

now() { date +%s.%N; }
# mib BYTES: MiB with one decimal.
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# used_bytes MOUNTPOINT: bytes used on that filesystem.
used_bytes() { df -B1 --output=used "$1" | tail -n 1 | tr -d ' '; }

# mounts_below DIR: mount points at or below DIR, most recent first.
mounts_below() {
	findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1' | tac
}

# release_image IMG: unmount every mount of every loop device backed by
# the image file IMG (most recent first), detach the devices, delete IMG.
release_image() {
	local img=$1 dev t
	[ -e "$img" ] || return 0
	for dev in $(losetup --list -n -O NAME -j "$img"); do
		for t in $(findmnt -rn -S "$dev" -o TARGET | tac); do
			umount "$t" 2>/dev/null || umount -l "$t"
		done
		losetup -d "$dev"
	done
	rm -f "$img"
}

# loop_ext4 IMG SIZE MOUNTPOINT: a new sparse image IMG of SIZE, made an
# empty ext4 with 512-byte inodes (the redirect layout's overlay xattrs
# fit in the inode) and mounted at MOUNTPOINT through a direct-I/O loop
# device (the host's page cache does not hold the image a second time).
# The inode tables are left uninitialised and never zeroed in the
# background (noinit_itable), so no kernel thread writes during
# measurements.
loop_ext4() {
	local dev
	truncate -s "$2" "$1"
	chmod 600 "$1"
	mkfs.ext4 -q -F -I 512 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$1"
	dev=$(losetup --direct-io=on -f --show "$1")
	mount -o noinit_itable "$dev" "$3"
}
