#!/bin/bash
# vunify demo: three guests built from this machine's own system files, each
# on a filesystem of its own (a loop-mounted ext4 image), unified into a pool
# on a fourth one.  Needs root, no network.  Run by `make demo`.
#
#   scripts/demo.sh            (re)build the demo; leaves the guests mounted
#   scripts/demo.sh --clean    unmount everything and delete the demo
#
# Environment:
#   DEMO_DIR        work directory          (default /var/tmp/vunify-demo)
#   VUNIFY          the vunify binary       (default build/vunify of this repo)
#   DEMO_GUEST_MIB  size of a guest's tree  (default 700; taken from /usr)
#   DEMO_IMG_SIZE   size of each image file (default 3G; sparse)
#   DEMO_INODE_SIZE ext4 inode size         (default 512, see mkfs_mount)
set -eu
set -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/scripts/lib.sh"
VUNIFY=${VUNIFY:-$here/build/vunify}
DEMO_DIR=${DEMO_DIR:-/var/tmp/vunify-demo}
GUEST_MIB=${DEMO_GUEST_MIB:-700}
IMG_SIZE=${DEMO_IMG_SIZE:-3G}
GUESTS="g1 g2 g3"

# the demo speaks on stdout, a blank line before each step
say() { printf '\n== %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }
# hb BYTES: human-readable size (e.g. 1.3GiB).
hb() {
	local b=$1 sign=""
	if [ "$b" -lt 0 ]; then
		sign=-
		b=$((-b))
	fi
	printf '%s%s' "$sign" "$(numfmt --to=iec-i --suffix=B --format=%.1f "$b")"
}
# since T0: seconds elapsed since T0, one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

parse_mode build "$@"
check_work_dir DEMO_DIR
need_root "loop devices, mounts, chroot"

IMG=$DEMO_DIR/img   # the image files
FS=$DEMO_DIR/fs     # where the images are mounted: fs/pool, fs/g1, ...
MNT=$DEMO_DIR/mnt   # the guests' merged roots
STAGE=$DEMO_DIR/stage
POOL=$FS/pool/pool

vu() { "$VUNIFY" -p "$POOL" "$@"; }

# ---------------------------------------------------------------- cleanup --

cleanup() {
	[ -e "$DEMO_DIR" ] || return 0
	local g t dev img
	# Unmount the guests through vunify when it and the pool are there.
	if [ -x "$VUNIFY" ] && [ -d "$POOL" ]; then
		for g in $GUESTS; do
			if findmnt -rn "$MNT/$g" >/dev/null 2>&1; then
				info "vunify umount $g"
				vu umount "$g" || true
			fi
		done
	fi
	# Whatever is still mounted below the demo dir (overlays first: they
	# were mounted last), then the images wherever else they are mounted.
	for t in $(mounts_below "$DEMO_DIR"); do
		info "umount $t"
		umount "$t" 2>/dev/null || umount -l "$t"
	done
	for img in "$IMG"/*.img; do
		[ -e "$img" ] || continue
		info "release $img (umount, losetup -d, rm)"
		release_image "$img"
	done
	# Loop devices whose image file was deleted under them.
	losetup --list -n -O NAME,BACK-FILE | while read -r dev t; do
		case $t in
		"$IMG"/*" (deleted)")
			info "losetup -d $dev ($t)"
			losetup -d "$dev" || true
			;;
		esac
	done
	[ -z "$(mounts_below "$DEMO_DIR")" ] || die "still mounted below $DEMO_DIR"
	rm -rf --one-file-system "$IMG" "$FS" "$MNT" "$STAGE"
	rmdir "$DEMO_DIR" 2>/dev/null || true
}

if [ "$mode" = clean ]; then
	say "Removing the demo in $DEMO_DIR"
	cleanup
	echo "   done"
	exit 0
fi

# ------------------------------------------------------------------ build --

T_START=$(now)
[ -x "$VUNIFY" ] || die "no vunify binary at $VUNIFY (run make, or set VUNIFY)"
need_commands mkfs.ext4 losetup findmnt tar chroot numfmt truncate head du df

say "Cleaning up any previous demo in $DEMO_DIR"
cleanup
mkdir -p "$IMG" "$FS" "$MNT" "$STAGE"
chmod 700 "$DEMO_DIR" # the guests hold a copy of this machine's /etc

# The guest trees are a sample of this machine's /usr: the entries of /usr
# (one level deep; directories over SPLIT are split into their entries, up to
# usr/X/Y/Z) smallest first, as long as they fit the budget.  Big outliers
# (JDKs, SDKs, toolchains) are left out; libc and the common tools are in.
SPLIT_KIB=$((64 * 1024))
BUDGET_KIB=$((GUEST_MIB * 1024))
parents=$STAGE/parents.lst # directories copied without their content
cands=$STAGE/cands.lst     # "KIB<TAB>PATH" entries, NUL-terminated

# expand DIR DEPTH: list DIR's entries into $cands, splitting big directories.
expand() {
	local dir=$1 depth=$2 kib path
	printf '%s\n' "${dir#/}" >>"$parents"
	while IFS=$'\t' read -r -d '' kib path; do
		[ "$path" != "$dir" ] || continue
		if [ "$kib" -gt "$SPLIT_KIB" ] && [ "$depth" -lt 3 ] &&
			[ -d "$path" ] && [ ! -L "$path" ]; then
			expand "$path" $((depth + 1))
		else
			printf '%s\t%s\0' "$kib" "${path#/}" >>"$cands"
		fi
	done < <(du -0 -ak -x -d 1 "$dir")
}

say "Building a base guest tree from this machine's /usr, /etc, /var/lib/dpkg (budget ${GUEST_MIB} MiB)"
t0=$(now)
: >"$parents"
: >"$cands"
printf '%s\n' var var/lib >>"$parents"
expand /usr 1
# /etc and dpkg's database always go in whole.
for p in etc var/lib/dpkg; do
	printf '%s\t%s\0' 0 "$p" >>"$cands"
done
fixed_kib=$(du -sk -x /etc /var/lib/dpkg | awk '{ s += $1 } END { print s }')
picked=$STAGE/picked.lst
total=$fixed_kib
n_in=0
n_out=0
skipped_kib=0
: >"$picked"
while IFS=$'\t' read -r -d '' kib path; do
	if [ $((total + kib)) -le "$BUDGET_KIB" ]; then
		total=$((total + kib))
		n_in=$((n_in + 1))
		printf '%s\0' "$path" >>"$picked"
	else
		n_out=$((n_out + 1))
		skipped_kib=$((skipped_kib + kib))
	fi
done < <(sort -z -n "$cands")
info "$n_in entries taken ($(hb $((total * 1024)))), $n_out big ones left out ($(hb $((skipped_kib * 1024))))"
base=$STAGE/base
mkdir "$base"
tar -C / --numeric-owner --xattrs --xattrs-include='*' --acls -cf - \
	--no-recursion -T "$parents" --recursion --null -T "$picked" |
	tar -C "$base" --numeric-owner --xattrs --xattrs-include='*' --acls -xpf -
# merged-/usr top-level links and the usual empty directories
for l in bin sbin lib lib32 lib64 libx32; do
	if [ -L "/$l" ]; then
		ln -s "$(readlink "/$l")" "$base/$l"
	elif [ -d "/usr/$l" ] && [ -d "$base/usr/$l" ]; then
		ln -s "usr/$l" "$base/$l"
	fi
done
[ -d "$base/usr/lib64" ] || { [ ! -d /usr/lib64 ] || die "no usr/lib64 in the sample"; }
for d in proc sys dev run root home mnt srv opt boot media var/log var/cache var/spool; do
	mkdir -p "$base/$d"
done
chmod 700 "$base/root"
mkdir -m 1777 "$base/tmp" "$base/var/tmp"

# The three guests share most of the base (hard links in the staging dir;
# `vunify add --from` copies each tree whole) and differ like real ones do.
# Every file changed per guest is replaced, never written through a link.
set_hostname() {
	rm -f "$1/etc/hostname"
	printf '%s\n' "$2" >"$1/etc/hostname"
}
for g in $GUESTS; do
	cp -al "$base" "$STAGE/$g"
	set_hostname "$STAGE/$g" "demo-$g"
done
# g2: a slimmer install, without docs, manuals and some of /usr/lib.
gone=0
for p in usr/share/doc usr/share/man usr/lib/python3 usr/lib/python3.* \
	usr/lib/*/perl usr/lib/*/perl5 usr/share/perl usr/lib/git-core; do
	for q in "$STAGE/g2/"$p; do
		[ -e "$q" ] || continue
		gone=$((gone + $(du -sk "$q" | cut -f1)))
		rm -rf "$q"
	done
done
# g3: an application with private data, and a config of its own.
mkdir -m 750 "$STAGE/g3/var/lib/app"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$STAGE/g3/var/lib/app/data.db"
printf 'listen = 0.0.0.0:8080\ndata = /var/lib/app/data.db\n' >"$STAGE/g3/etc/app.conf"
info "g1: the base tree"
info "g2: without /usr/share/doc, /usr/share/man, python, perl, git ($(hb $((gone * 1024))) less)"
info "g3: plus /etc/app.conf and a private 20 MiB /var/lib/app/data.db"
info "trees built in $(since "$t0") s"

# Every guest gets a partition of its own, the pool another one.  512-byte
# inodes: the redirect layout's stubs carry two overlay xattrs (~140 bytes)
# that do not fit in a 256-byte ext4 inode, which then spends a 4 KiB xattr
# block on every unified file (~85 MiB more per guest here).
say "Creating loop-mounted ext4 filesystems ($IMG_SIZE sparse images)"
mkfs_mount() {
	local name=$1 img=$IMG/$1.img dev
	truncate -s "$IMG_SIZE" "$img"
	chmod 600 "$img"
	mkfs.ext4 -q -F -L "vu-$name" -I "${DEMO_INODE_SIZE:-512}" -E lazy_itable_init=1,lazy_journal_init=1 "$img"
	dev=$(losetup -f --show "$img")
	mkdir -p "$FS/$name"
	mount "$dev" "$FS/$name"
	info "$name: $img on $dev mounted at $FS/$name"
}
for n in pool $GUESTS; do
	mkfs_mount "$n"
done
declare -A EMPTY_USED
for n in pool $GUESTS; do
	EMPTY_USED[$n]=$(used_bytes "$FS/$n")
done

say "vunify init; vunify add (copying each tree onto its guest's filesystem)"
vu init --layout auto
layout=$(vu status --json | sed -n 's/.*"layout" *: *"\([a-z]*\)".*/\1/p')
info "pool $POOL, layout: ${layout:-?}"
t0=$(now)
for g in $GUESTS; do
	vu add "$g" "$FS/$g/home" --from "$STAGE/$g"
	info "added $g, home $FS/$g/home"
done
info "added in $(since "$t0") s"
rm -rf --one-file-system "$STAGE"
sync

# all_used: bytes used over the guests' filesystems and the pool's.
guest_used() {
	local s=0 g
	for g in $GUESTS; do s=$((s + $(used_bytes "$FS/$g"))); done
	echo "$s"
}
df_all() {
	local n
	df -h --output=target,size,used,avail,pcent "$FS/pool" | head -n 1
	for n in $GUESTS pool; do
		df -h --output=target,size,used,avail,pcent "$FS/$n" | tail -n 1
	done
}

say "Disk usage before unification"
df_all
files_before=0
bytes_before=0
for g in $GUESTS; do
	read -r nf nb < <(find "$FS/$g/home/upper" -xdev -type f -printf '%s\n' |
		awk '{ n++; s += $1 } END { print n + 0, s + 0 }')
	files_before=$((files_before + nf))
	bytes_before=$((bytes_before + nb))
	info "$g: $nf files, $(hb "$nb")"
done
g_before=$(guest_used)
p_before=$(used_bytes "$FS/pool")

say "vunify unify"
t0=$(now)
vu unify
unify_s=$(since "$t0")
info "unify took $unify_s s"
sync

say "Mounting the guests"
for g in $GUESTS; do
	mkdir -p "$MNT/$g"
	vu mount "$g" "$MNT/$g"
	info "$g: $(findmnt -n -o FSTYPE,TARGET "$MNT/$g")"
done

say "Running a program inside each guest (chroot, only the guest's own files)"
# shellcheck disable=SC2016 # expanded by the guest's shell
prog='echo "hostname:          $(cat /etc/hostname)"
echo "programs:          $(ls /usr/bin | wc -l) in /usr/bin"
echo "packages (dpkg):   $(dpkg-query -W | wc -l)"
echo "docs:              $(ls /usr/share/doc 2>/dev/null | wc -l) in /usr/share/doc"
if [ -e /var/lib/app/data.db ]; then
	echo "app data:          $(ls -l /var/lib/app/data.db | cut -d" " -f5) bytes in /var/lib/app/data.db"
fi
echo "sha256 of /usr/bin/dpkg: $(sha256sum /usr/bin/dpkg | cut -c1-16)..."'
for g in $GUESTS; do
	echo "-- $g: chroot $MNT/$g /usr/bin/env -i /bin/sh -c ..."
	chroot "$MNT/$g" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c "$prog" |
		sed 's/^/   /'
done

say "vunify status"
vu status
say "vunify status --json"
vu status --json
echo

sync
say "Disk usage after unification"
df_all
g_after=$(guest_used)
p_after=$(used_bytes "$FS/pool")

before=$((g_before + p_before))
after=$((g_after + p_after))
saved=$((before - after))
empty=0
for n in pool $GUESTS; do empty=$((empty + EMPTY_USED[$n])); done
vu_saved=$(vu status --json | sed -n 's/.*"saved_bytes" *: *\([0-9]*\).*/\1/p')

say "Failover: g1 taken over by a second pool (as another host would, with its own pool)"
# The second pool stands for another host's: a pool of its own on its own
# filesystem, kept up to date as a replica (over ssh it would be
# root@host:DIR; here a local DIR).  g1's home is its own filesystem: on two
# hosts DRBD would move it; here it simply stays where it is.
mkfs_mount pool2 >/dev/null
POOL2=$FS/pool2/pool
vu2() { "$VUNIFY" -p "$POOL2" "$@"; }
vu2 init --layout "${layout:-auto}" 2>/dev/null
vu replica add "$POOL2"
t0=$(now)
vu replicate | sed 's/^/   /'
info "replicate took $(since "$t0") s; again, with nothing new: $(
	t1=$(now)
	vu replicate >/dev/null
	since "$t1"
) s"
vu umount g1
info "g1 stopped on the first pool; the second adopts its home:"
vu2 adopt --verify g1 "$FS/g1/home" | sed 's/^/   /'
vu2 mount g1 "$MNT/g1"
echo "-- g1 under the second pool: chroot $MNT/g1 ..."
chroot "$MNT/g1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c \
	'echo "   hostname: $(cat /etc/hostname), packages: $(dpkg-query -W | wc -l), sha256 of /usr/bin/dpkg: $(sha256sum /usr/bin/dpkg | cut -c1-16)..."'
vu2 umount g1
vu adopt g1 "$FS/g1/home" >/dev/null
vu mount g1 "$MNT/g1"
info "and back: the first pool takes g1 back (adopt), mounted again at $MNT/g1"

say "Summary"
printf '   %-34s %s\n' \
	"guests:" "3 ($GUESTS), each on its own ext4; layout ${layout:-?}" \
	"guest files before:" "$(hb "$bytes_before") in $files_before files ($bytes_before bytes)" \
	"disk used before:" "$(hb "$before")  (guests $(hb "$g_before") + pool $(hb "$p_before"))" \
	"disk used after:" "$(hb "$after")  (guests $(hb "$g_after") + pool $(hb "$p_after"))" \
	"saved on disk:" "$(hb "$saved")  ($((saved * 100 / before))% of the space used before)" \
	"saved, as vunify status reports:" "$(hb "${vu_saved:-0}")" \
	"(empty ext4 overhead, in both:)" "$(hb "$empty")" \
	"unify took:" "$unify_s s" \
	"whole demo took:" "$(since "$T_START") s"

say "What to try next (the guests stay mounted at $MNT/{${GUESTS// /,}})"
next() { printf '   %-22s %s\n' "# $1" "$2"; }
next "the pool:" "export VUNIFY_POOL=$POOL"
next "the figures:" "$VUNIFY status"
next "inside a guest:" "chroot $MNT/g1 /bin/sh"
next "change, re-unify:" "echo changed >$MNT/g1/etc/motd; $VUNIFY umount g1; $VUNIFY unify g1"
next "mount it again:" "$VUNIFY mount g1 $MNT/g1   (after make install: mount -t vunify g1 $MNT/g1)"
next "check everything:" "$VUNIFY fsck"
next "a plain copy:" "$VUNIFY export g2 $DEMO_DIR/g2-copy"
next "read on:" "man -l $here/docs/vunify.8; $here/docs/OPERATIONS.md"
if [ "$DEMO_DIR" = /var/tmp/vunify-demo ]; then
	info "tear down with:  $here/scripts/demo.sh --clean"
else
	info "tear down with:  DEMO_DIR=$DEMO_DIR $here/scripts/demo.sh --clean"
fi
