#!/bin/bash
# mk-hostile.sh [--seed N] [--overlay-attacks] DIR
#
# Create a synthetic hostile guest tree at DIR (which must not exist or be
# empty): everything a guest's root could leave in its filesystem that a
# careless tool gets wrong.  Needs root (devices, owners, trusted.* xattrs).
#
#   - file capabilities (setcap, or a raw security.capability value), POSIX
#     ACLs (access and default), user.* and trusted.* xattrs, a 1000-byte
#     xattr value and a file with 40 xattrs, xattrs on a symlink and a dir
#   - setuid/setgid/sticky bits, mode 07777 and 0000 files, odd owners
#     (uid 1000000, 4294967294, gid 65534)
#   - odd names: newline, backslash, spaces, non-UTF-8 bytes, leading dash,
#     '*', "...", a 255-byte name (ASCII and non-UTF-8)
#   - a fifo, char devices (1:3), a block device (7:200), a unix socket
#   - hard-link groups of 3 across directories in /usr and in /var, one
#     spanning /usr and /tmp (partly eligible), a hard-linked symlink pair
#   - a 3 GiB all-hole file /var/lib/disk.img and a 2 GiB sparse file with
#     data blocks /opt/sparse.img
#   - symlinks out of the tree (/etc/passwd, ../../../../etc/shadow),
#     dangling, a loop, a 4000-byte target (1000 on xfs), and /usr/lib/evil -> /etc so
#     anything resolving usr/lib/evil/... lands on the host's /etc
#   - depth: a chain under /usr/share/deep whose path exceeds 6000 bytes,
#     and a chain 1100 directories deep (more levels than the default
#     1024-fd limit), each with a file at the bottom
#   - empty files, files under /tmp, /etc/shadow, /etc/gshadow and an ssh
#     host key, identical content in many places (same and different
#     metadata), mtimes with nanoseconds, before 1970 and after 2038
#   - a directory of mode 0500 and one of mode 0000, each holding files
#
# --overlay-attacks also plants what overlayfs itself would interpret if
# copied verbatim into an upper layer: a 0:0 char device (a whiteout), and
# trusted.overlay.{metacopy,redirect,opaque} xattrs.  A faithful tool must
# keep the guest's view (or refuse clearly); kept apart because the manifest
# hides trusted.overlay.* by design.
#
# Content is pseudo-random from --seed (default 1), so two trees made with
# the same seed share content (and dedup has something to find across
# guests) while different seeds share only the fixed texts.
set -eu

seed=1
attacks=
while [ $# -gt 1 ]; do
	case $1 in
	--seed)
		seed=$2
		shift 2
		;;
	--overlay-attacks)
		attacks=1
		shift
		;;
	*) break ;;
	esac
done
if [ $# != 1 ] || [ -z "$1" ]; then
	echo "usage: mk-hostile.sh [--seed N] [--overlay-attacks] DIR" >&2
	exit 2
fi
if [ "$(id -u)" != 0 ]; then
	echo "mk-hostile.sh: needs root" >&2
	exit 1
fi
mkdir -p "$1"
D=$(cd "$1" && pwd -P)
if [ -n "$(ls -A "$D")" ]; then
	echo "mk-hostile.sh: '$D' is not empty" >&2
	exit 1
fi

# prng TAG BYTES: deterministic bytes for (seed, TAG).
prng() {
	local key
	key=$(printf '%s/%s' "$seed" "$1" | sha256sum | cut -c1-32)
	head -c "$2" /dev/zero | openssl enc -aes-128-ctr -K "$key" -iv 00000000000000000000000000000000 -nosalt
}

# put PATH < content: write a file, creating its directories.
put() {
	mkdir -p "$(dirname "$D/$1")"
	cat >"$D/$1"
}

# Never follow a symlink of the tree: every path handed to a tool below is
# either one we just created as a regular file/dir, or passed with -h/-P.
mkdir -p "$D"/{bin,dev,etc/ssh,home/odd,opt,root,run,tmp,usr/bin,usr/sbin,usr/lib,usr/share/doc}
mkdir -p "$D"/var/{lib,cache,log,spool,tmp}
chmod 1777 "$D/tmp" "$D/var/tmp"
chmod 0700 "$D/root"

# --- /etc, secrets -----------------------------------------------------------
put etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
odd:x:1000000:65534::/home/odd:/bin/sh
EOF
put etc/group <<'EOF'
root:x:0:
shadow:x:42:
nogroup:x:65534:
EOF
put etc/shadow <<'EOF'
root:$6$hostile$notarealhashnotarealhashnotarealhash:19000:0:99999:7:::
EOF
chown 0:42 "$D/etc/shadow"
chmod 0640 "$D/etc/shadow"
cp -p "$D/etc/shadow" "$D/etc/gshadow"
prng ssh-key 400 | base64 | put etc/ssh/ssh_host_ed25519_key
chmod 0600 "$D/etc/ssh/ssh_host_ed25519_key"
echo hostile >"$D/etc/hostname"
: >"$D/etc/empty"

# --- capabilities, ACLs, xattrs ---------------------------------------------
prng ping 30000 | put usr/bin/ping
chmod 0755 "$D/usr/bin/ping"
if command -v setcap >/dev/null; then
	setcap cap_net_raw+ep "$D/usr/bin/ping"
else
	# VFS_CAP_REVISION_2, effective, permitted = CAP_NET_RAW (13)
	setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 "$D/usr/bin/ping"
fi
prng capraw 5000 | put usr/sbin/capraw
chmod 0750 "$D/usr/sbin/capraw"
setfattr -n security.capability -v 0x0100000200040000000400000000000000000000 "$D/usr/sbin/capraw"
echo "acl file" | put etc/acl-file
setfacl -m u:1234:rw,g:4321:r,m::rw "$D/etc/acl-file"
mkdir -p "$D/var/lib/acl-dir"
setfacl -m u:1234:rwx "$D/var/lib/acl-dir"
setfacl -d -m u:1234:rwx,g::r-x "$D/var/lib/acl-dir"
echo "in acl dir" >"$D/var/lib/acl-dir/f"
echo "xattr file" | put usr/share/xattr-file
setfattr -n user.comment -v "hello world" "$D/usr/share/xattr-file"
setfattr -n user.binary -v 0x00ff00fe0a0d "$D/usr/share/xattr-file"
setfattr -n user.empty "$D/usr/share/xattr-file"
setfattr -n trusted.guest -v secret "$D/usr/share/xattr-file"
setfattr -n user.big -v "0x$(prng bigx 1000 | od -An -tx1 -v | tr -d ' \n')" "$D/usr/share/xattr-file"
setfattr -n user.dir -v yes "$D/usr/share/doc"
: >"$D/usr/share/many-xattrs"
for i in $(seq -w 1 40); do
	setfattr -n "user.x$i" -v "value $i" "$D/usr/share/many-xattrs"
done
: >"$D/usr/share/empty-with-xattr"
setfattr -n user.only -v 1 "$D/usr/share/empty-with-xattr"

# --- modes and owners -----------------------------------------------------
prng suid 20000 | put usr/bin/suid-root
chmod 4755 "$D/usr/bin/suid-root"
prng sgid 20000 | put usr/bin/sgid-odd
chown 1000000:65534 "$D/usr/bin/sgid-odd"
chmod 2755 "$D/usr/bin/sgid-odd" # after chown, which clears set-id bits
prng allbits 100 | put usr/bin/allbits
chown 4294967294:4294967294 "$D/usr/bin/allbits"
chmod 07777 "$D/usr/bin/allbits"
echo "no permissions" | put etc/mode0000
chmod 0000 "$D/etc/mode0000"
chown -R 1000000:65534 "$D/home/odd"
mkdir -p "$D/usr/share/ro-dir" "$D/var/lib/locked/sub"
echo one >"$D/usr/share/ro-dir/one"
echo two >"$D/usr/share/ro-dir/two"
echo locked >"$D/var/lib/locked/file"
echo deeper >"$D/var/lib/locked/sub/file"
chmod 0500 "$D/usr/share/ro-dir"
chmod 0000 "$D/var/lib/locked"

# --- odd names ----------------------------------------------------------
o=$D/home/odd
echo newline >"$o/a"$'\n'"b"
echo backslash >"$o/back\\slash"
echo spaces >"$o/ lead and trail "
echo nonutf8 >"$o/"$'\xff\xfe\x80'
echo dash >"$o/-rf"
echo star >"$o/*"
echo dots >"$o/..."
echo eq >"$o/a=b,c"
echo tab >"$o/tab"$'\t'"x"
echo ascii255 >"$o/$(printf 'x%.0s' $(seq 255))"
echo bin255 >"$o/$(printf '\xe9%.0s' $(seq 255))"
mkdir "$o/dir"$'\n'"with newline"
echo inside >"$o/dir"$'\n'"with newline/file"
chown -R 1000000:65534 "$o"

# --- special files -----------------------------------------------------------
mkfifo "$D/var/spool/fifo"
mknod "$D/dev/null" c 1 3
chmod 0666 "$D/dev/null"
mknod "$D/usr/lib/chardev-in-usr" c 1 3
mknod "$D/dev/blk" b 7 200
if command -v python3 >/dev/null; then
	# bind() paths are limited to 108 bytes: bind relative to the dir.
	(cd "$D/var/lib" && python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("app.sock")')
fi

# --- hard links ---------------------------------------------------------
mkdir -p "$D/usr/lib/hl" "$D/usr/share/hl" "$D/var/lib/hl" "$D/var/cache/hl" "$D/var/log/hl"
prng hl-usr 70000 | put usr/bin/hl-usr
ln "$D/usr/bin/hl-usr" "$D/usr/lib/hl/hl-usr"
ln "$D/usr/bin/hl-usr" "$D/usr/share/hl/hl-usr"
prng hl-var 50000 | put var/lib/hl/db
ln "$D/var/lib/hl/db" "$D/var/cache/hl/db"
ln "$D/var/lib/hl/db" "$D/var/log/hl/db"
prng hl-mixed 30000 | put usr/lib/hl/mixed
ln "$D/usr/lib/hl/mixed" "$D/tmp/mixed"
ln -s ../target "$D/usr/lib/hl/sym1"
ln -P "$D/usr/lib/hl/sym1" "$D/usr/lib/hl/sym2"

# --- sparse files --------------------------------------------------------
truncate -s 3G "$D/var/lib/disk.img"
truncate -s 2G "$D/opt/sparse.img"
prng sparse0 1048576 | dd of="$D/opt/sparse.img" conv=notrunc status=none
prng sparse1 65536 | dd of="$D/opt/sparse.img" bs=65536 seek=16384 conv=notrunc status=none
prng sparse2 4096 | dd of="$D/opt/sparse.img" bs=4096 seek=524287 conv=notrunc status=none

# --- symlinks ----------------------------------------------------------------
ln -s /etc/passwd "$D/etc/evil-passwd"
ln -s ../../../../etc/shadow "$D/var/up-shadow"
ln -s /nonexistent/dangling "$D/var/dangling"
ln -s loop-b "$D/var/loop-a"
ln -s loop-a "$D/var/loop-b"
ln -s /etc "$D/usr/lib/evil"
ln -s ../../../../../../../../.. "$D/usr/lib/evil-up"
# 4000 bytes where the filesystem allows (xfs stops at 1024)
ln -s "$(printf 'l/%.0s' $(seq 2000))" "$D/usr/lib/long-target" 2>/dev/null ||
	ln -s "$(printf 'l/%.0s' $(seq 500))" "$D/usr/lib/long-target"
ln -s "$(printf '\xff\n x')" "$D/usr/lib/odd-target"
setfattr -h -n trusted.on-symlink -v 1 "$D/etc/evil-passwd"
touch -h -d '2001-02-03 04:05:06.987654321' "$D/etc/evil-passwd"

# --- depth ---------------------------------------------------------------
mkdir -p "$D/usr/share/deep"
(
	cd "$D/usr/share/deep"
	n=$(printf 'n%.0s' $(seq 210))
	for _ in $(seq 30); do
		mkdir "$n"
		cd "$n"
	done
	echo "bottom of a 6300-byte path" >file
)
(
	# 11 steps of 100 levels: a relative mkdir -p and cd stay well below
	# PATH_MAX each, and the shell does not re-resolve 1100 levels per step.
	cd "$D/usr/share/deep"
	step=$(printf 'd/%.0s' $(seq 100))
	for _ in $(seq 11); do
		mkdir -p "$step"
		cd "$step"
	done
	echo "1100 levels down" >file
)

# --- content shared in many places ---------------------------------------
prng shared-big 1048576 | put usr/lib/big1
cp "$D/usr/lib/big1" "$D/opt/big2"
cp "$D/usr/lib/big1" "$D/var/lib/big3"
cp "$D/usr/lib/big1" "$D/tmp/big4"
for p in a b c; do
	printf 'Copyright: hostile tree\nLicense: none\n' | put "usr/share/doc/$p/copyright"
done
echo "same content, other metadata" | put usr/share/meta-0644
cp "$D/usr/share/meta-0644" "$D/usr/share/meta-0600"
chmod 0600 "$D/usr/share/meta-0600"
cp "$D/usr/share/meta-0644" "$D/usr/share/meta-uid5"
chown 5:5 "$D/usr/share/meta-uid5"
cp "$D/usr/share/meta-0644" "$D/usr/share/meta-xattr"
setfattr -n user.differs -v 1 "$D/usr/share/meta-xattr"
: >"$D/usr/share/empty1"
: >"$D/var/empty-file"
echo "temporary" >"$D/tmp/tmpfile"
echo "var tmp" >"$D/var/tmp/file"
echo "runtime" >"$D/run/pid"

# --- overlayfs attacks (opt-in) -------------------------------------------
if [ -n "$attacks" ]; then
	mknod "$D/usr/lib/whiteout-lookalike" c 0 0
	echo "guest data" >"$D/usr/lib/planted-redirect"
	setfattr -n trusted.overlay.metacopy "$D/usr/lib/planted-redirect"
	setfattr -n trusted.overlay.redirect -v "/$(printf 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')" \
		"$D/usr/lib/planted-redirect"
	mkdir -p "$D/usr/lib/planted-opaque"
	echo visible >"$D/usr/lib/planted-opaque/file"
	setfattr -n trusted.overlay.opaque -v y "$D/usr/lib/planted-opaque"
fi

# --- times ----------------------------------------------------------------
touch -d '2001-02-03 04:05:06.123456789' "$D/usr/share/meta-0644" "$D/usr/bin/ping"
touch -d '1960-06-01 00:00:00.5' "$D/usr/share/meta-0600"
touch -d '2100-01-01 00:00:00.000000001' "$D/usr/share/meta-uid5"
# Directory times last, after everything inside was created.
touch -d '2010-10-10 10:10:10.101010101' "$D/usr/share/ro-dir" "$D/var/lib/locked"
