#!/bin/bash
# The Debian package: `make deb` builds vunify_VERSION_amd64.deb with
# dpkg-buildpackage (out of a copy of the tree: the source tree stays as it
# was), lintian finds no error or warning in it, and `apt-get install
# ./vunify_*.deb` installs it into a fresh Debian bookworm (a copy of the
# cached debootstrap minbase tree) in a network namespace without network
# (its one dependency missing from minbase, libssl3, is given as a .deb
# too).
# There `vunify --version` and `vunify init` run, and the installed
# mount.vunify serves `mount -t vunify`.
. "$(dirname "$0")/lib.sh"
export LC_ALL=C
need_root
need_cmd dpkg-buildpackage dh lintian chroot
need_bin "$VUNIFY"

"$TOP/scripts/debian-trees.sh" bookworm-minbase >"$TEST_TMP/trees.out" || fatal "debian-trees.sh failed"
minbase=$(cat "$TEST_TMP/trees.out")

# ---- build ------------------------------------------------------------------
tree_state() { # what git sees in the source tree, and every file's mtime there
	git -C "$TOP" status --porcelain --ignored=no 2>/dev/null
	find "$TOP" \( -path "$TOP/.git" -o -path "$TOP/build*" \) -prune -o -newer "$TEST_TMP/trees.out" -print
}
tree_state >"$TEST_TMP/tree.before"
version=$(sed -n '1s/^vunify (\([^)]*\)).*/\1/p' "$TOP/debian/changelog")
[ -n "$version" ] || fatal "no version in debian/changelog"
build=$TEST_TMP/build
# The unit tests run in make check already: nocheck keeps this test lean.
assert_ok env DEB_BUILD_OPTIONS=nocheck make -C "$TOP" --no-print-directory deb BUILD="$build" || {
	tail -n 20 "$LAST_STDOUT"
	exit 1
}
deb=$build/deb/vunify_${version}_amd64.deb
[ -f "$deb" ] && _pass "built $(basename "$deb")" || fatal "no $deb: $(ls "$build/deb")"
tree_state >"$TEST_TMP/tree.after"
assert_same_manifest "$TEST_TMP/tree.before" "$TEST_TMP/tree.after" "make deb left the source tree as it was"

dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$TEST_TMP/contents"
for f in /usr/sbin/vunify /usr/sbin/mount.vunify /usr/share/man/man8/vunify.8.gz \
	/usr/share/man/man8/mount.vunify.8.gz /lib/systemd/system/vunify-mount@.service \
	/lib/systemd/system/vunify-unify.service /lib/systemd/system/vunify-unify.timer \
	/usr/share/bash-completion/completions/vunify /usr/share/doc/vunify/copyright \
	/usr/share/doc/vunify/changelog.gz; do
	grep -qxF "$f" "$TEST_TMP/contents" && _pass "package holds $f" || _fail "package lacks $f"
done
depends=$(dpkg-deb -f "$deb" Depends)
case $depends in
*libssl3*) _pass "Depends: $depends" ;;
*) _fail "Depends lacks libssl3: $depends" ;;
esac

lintian "$deb" >"$TEST_TMP/lintian.out" 2>&1
grep -v '^running with root privileges' "$TEST_TMP/lintian.out" | sed 's/^/    lintian: /'
assert_eq "" "$(grep -E '^[EW]: ' "$TEST_TMP/lintian.out")" "lintian: no error, no warning"

# ---- install into a fresh bookworm --------------------------------------------
root=$TEST_TMP/root
cp -a "$minbase" "$root" || fatal "copy $minbase"
mount -t proc proc "$root/proc" || fatal "mount proc"
libssl=$(find "${VUNIFY_TREE_CACHE:-/var/cache/vunify-test}/trees/.debs" /var/cache/apt/archives \
	-maxdepth 1 -name 'libssl3_3.*deb12*_amd64.deb' 2>/dev/null | sort -V | tail -n 1)
if [ -z "$libssl" ]; then
	(cd "$TEST_TMP" && apt-get download libssl3 >/dev/null) || fatal "no libssl3 .deb"
	libssl=$(ls "$TEST_TMP"/libssl3_*.deb)
fi
cp "$deb" "$libssl" "$root/tmp/"
# A machine that knows no archive, and has no network at all: apt must find
# everything in the two files.
rm -f "$root"/var/lib/apt/lists/*_Packages
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }
assert_status 127 in_root vunify --version # not there before
assert_ok unshare -n chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C \
	DEBIAN_FRONTEND=noninteractive apt-get install -y "/tmp/$(basename "$deb")" "/tmp/$(basename "$libssl")" ||
	sed 's/^/    /' "$LAST_STDOUT" | tail -n 20
assert_eq "install ok installed" "$(in_root dpkg-query -W -f='${Status}' vunify)" "dpkg: vunify installed"

assert_ok in_root vunify --version
assert_eq "vunify $version" "$(cat "$LAST_STDOUT")" "vunify --version in the chroot"
assert_ok in_root vunify init
assert_ok in_root vunify status --json
assert_eq 0 "$(jq '.guests | length' "$LAST_STDOUT")" "a fresh pool at /var/lib/vunify in the chroot"

# The installed mount helper, through the chroot's own mount(8).
mkdir -p "$root/srv/g1tree/etc" "$root/mnt/g1"
printf 'hello from g1\n' >"$root/srv/g1tree/etc/motd"
assert_ok in_root vunify add g1 /srv/g1 --from /srv/g1tree
assert_ok in_root vunify unify -q
assert_ok in_root mount -t vunify g1 /mnt/g1 -o pool=/var/lib/vunify
assert_eq "hello from g1" "$(cat "$root/mnt/g1/etc/motd" 2>&1)" "mount -t vunify with the packaged helper"
assert_ok in_root vunify umount g1
assert_ok in_root apt-get remove -y vunify
assert_status 127 in_root vunify --version
