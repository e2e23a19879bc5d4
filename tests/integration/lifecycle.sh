# shellcheck shell=bash
# Body of t30/t31: the life of a guest, in the layout $LAYOUT.  Sourced by
# the tNN scripts after lib.sh.
#
# Guests A (bookworm-minbase), B (bookworm-web: nginx-light and python3) and
# C (bookworm-minbase plus files of its own), each on a filesystem of its
# own, unified into a pool on another.  Then:
#
# 1. A is mounted and upgraded inside with apt-get (nginx-light from
#    deb.debian.org, the version B has), then edited, chmod'ed, files
#    deleted, a directory renamed, a directory replaced by a file, a file by
#    a directory, a directory deleted and made again (opaque).  Its merged
#    view is recorded, it is unmounted and everything is unified again: the
#    view must be identical, `dpkg --verify` must name exactly the files the
#    test changed, the upper must be small again and the newly installed
#    files must point at B's objects (few new objects).
# 2. fsck finds a corrupted object, and is clean again once it is repaired.
# 3. C's partition is detached; B is removed (its home then holds its whole
#    view) and gc runs: B's own objects go, C's stay; C re-attached is intact.
# 4. export A equals A's view.
#
# Prints a FIGURES line.

export LC_ALL=C # sort, join and comm agree
need_root
need_cmd chroot jq getfattr losetup mkfs.ext4 od dd
need_bin "$VUNIFY" "$MANIFEST"

"$TOP/scripts/debian-trees.sh" bookworm-minbase bookworm-web >"$TEST_TMP/trees.out" || fatal "debian-trees.sh failed"
mapfile -t paths <"$TEST_TMP/trees.out"
minbase=${paths[0]}
web=${paths[1]}

mkfs_loop 3G ext4 "$TEST_TMP/poolfs"
pool=$TEST_TMP/poolfs/pool
V=("$VUNIFY" -p "$pool")
mopt=()
[ "$LAYOUT" = link ] && mopt=(--no-ino)
assert_ok "${V[@]}" init --layout "$LAYOUT" || exit 1

# ---- helpers ------------------------------------------------------------------

declare -A home
for g in A B C; do
	home[$g]=$TEST_TMP/$g.fs/home
done

# C's filesystem is made by hand: the test detaches and re-attaches it.
cimg=$TEST_TMP/C.img
detach_image() { # detach every loop device backed by IMAGE
	local d
	for d in $(losetup -n -O NAME -j "$1"); do
		losetup -d "$d"
	done
}
attach_c() {
	local dev
	dev=$(losetup --find --show "$cimg") || return 1
	mount "$dev" "$TEST_TMP/C.fs"
}
defer detach_image "$cimg"

json() { # json FILTER: apply FILTER to `vunify status --json`
	"${V[@]}" status --json | jq -r "$1"
}

# lower_id GUEST PATH: what GUEST's lower entry for PATH (relative) points at:
# the redirect of its stub, or the device and inode of its link.  Nothing
# (status 1) when PATH is no unified entry.
lower_id() {
	if [ "$LAYOUT" = redirect ]; then
		local l rc=0
		l=$(lower_open "${home[$1]}") || return 1
		if [ -f "$l/$2" ]; then
			getfattr --absolute-names --only-values -n trusted.overlay.redirect "$l/$2" 2>/dev/null || rc=1
		else
			rc=1
		fi
		lower_close "$l"
		return $rc
	else
		[ -f "$pool/roots/$1/$2" ] || return 1
		stat -c %d:%i "$pool/roots/$1/$2"
	fi
}

# object_of GUEST PATH: the object file GUEST's lower entry for PATH is.
object_of() {
	local id
	id=$(lower_id "$1" "$2") || return 1
	if [ "$LAYOUT" = redirect ]; then
		echo "$pool/objects$id"
	else
		find "$pool/objects" -samefile "$pool/roots/$1/$2" -print -quit
	fi
}

# lower_map GUEST: "OBJECT PATH" for every unified entry of GUEST.
lower_map() {
	if [ "$LAYOUT" = redirect ]; then
		local l
		l=$(lower_open "${home[$1]}") || return 1
		(cd "$l" && getfattr -R -P --absolute-names -n trusted.overlay.redirect . 2>/dev/null) |
			awk '/^# file: / { p = substr($0, 10) } /^trusted.overlay.redirect=/ { o = $0; sub(/.*\//, "", o); sub(/"$/, "", o); print o, substr(p, 2) }'
		lower_close "$l"
	else
		join -o 2.2,1.2 <(find "$pool/roots/$1" -type f -printf '%i %P\n' | sort) \
			<(find "$pool/objects" -type f -printf '%i %f\n' | sort)
	fi
}

object_names() { # sorted names of all objects
	find "$pool/objects" -type f -printf '%f\n' | sort
}

chroot_run() { # chroot_run ROOT CMD...: CMD in ROOT with a clean environment
	local root=$1
	shift
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
		DEBIAN_FRONTEND=noninteractive ${http_proxy:+"http_proxy=$http_proxy"} "$@"
}

# ---- the guests ---------------------------------------------------------------

for g in A B; do
	# 512-byte inodes keep a stub's xattrs inside its inode (docs/OPERATIONS.md)
	MKFS_EXT4_OPTS="-I 512" mkfs_loop 2G ext4 "$TEST_TMP/$g.fs"
done
mkdir -p "$TEST_TMP/C.fs"
truncate -s 2G "$cimg" || fatal "truncate $cimg"
mkfs.ext4 -q -F -I 512 "$cimg" >"$TEST_TMP/.mkfs.log" 2>&1 || fatal "mkfs.ext4 $cimg: $(cat "$TEST_TMP/.mkfs.log")"
attach_c || fatal "attach $cimg on $TEST_TMP/C.fs"

assert_ok "${V[@]}" add A "${home[A]}" --from "$minbase" || exit 1
assert_ok "${V[@]}" add B "${home[B]}" --from "$web" || exit 1
assert_ok "${V[@]}" add C "${home[C]}" --from "$minbase" || exit 1
# Content of B's own and of C's own (under /opt: unified although unique),
# written while the guests are not mounted, as they would themselves.
for g in B C; do
	mkdir -p "${home[$g]}/upper/opt/$g-only"
	for i in 1 2 3 4; do
		head -c $((100000 * i)) /dev/urandom >"${home[$g]}/upper/opt/$g-only/f$i"
	done
done

assert_ok "${V[@]}" unify || exit 1
objects0=$(json .pool.objects)
object_names >"$TEST_TMP/objects0"

mkdir -p "$TEST_TMP/mnt/A" "$TEST_TMP/mnt/B" "$TEST_TMP/mnt/C"
assert_ok "${V[@]}" mount B "$TEST_TMP/mnt/B" || exit 1
manifest "$TEST_TMP/mnt/B" "$TEST_TMP/B.view.man" "${mopt[@]}"
assert_ok "${V[@]}" umount B

# ---- 1. upgrade A inside, change it, unify again ---------------------------------

m=$TEST_TMP/mnt/A
assert_ok "${V[@]}" mount A "$m" || exit 1
mkdir -p "$TEST_TMP/dpkg0"
cp "$m"/var/lib/dpkg/info/*.list "$TEST_TMP/dpkg0/"

mount --bind /proc "$m/proc" || fatal "bind /proc"
mount --bind /dev "$m/dev" || fatal "bind /dev"
if ! cmp -s /etc/resolv.conf "$m/etc/resolv.conf"; then
	rm -f "$m/etc/resolv.conf"
	cp /etc/resolv.conf "$m/etc/resolv.conf"
fi
printf '#!/bin/sh\nexit 101\n' >"$m/usr/sbin/policy-rc.d"
chmod 755 "$m/usr/sbin/policy-rc.d"

# apt_retry ARGS...: apt-get ARGS in A, three tries (the network may hiccup).
apt_retry() {
	local try
	for try in 1 2 3; do
		chroot_run "$m" apt-get -q -o Acquire::Languages=none -o Acquire::Retries=3 "$@" \
			>"$TEST_TMP/apt.out" 2>&1 && return 0
		echo "apt-get $* failed (try $try):"
		tail -n 5 "$TEST_TMP/apt.out" | sed 's/^/    /'
		[ "$try" = 3 ] || sleep $((5 * try))
	done
	return 1
}
if ! apt_retry update; then
	# Skip only when the archive is really out of reach; apt failing inside a
	# reachable network is a failure (of the merged view, perhaps).
	if ! timeout 20 bash -c 'exec 3<>/dev/tcp/deb.debian.org/80' 2>/dev/null; then
		skip "deb.debian.org unreachable: apt-get update failed three times"
	fi
	fatal "apt-get update in A failed although deb.debian.org is reachable: $(tail -n 3 "$TEST_TMP/apt.out")"
fi
# shellcheck disable=SC2016 # ${Version} is dpkg-query's
bver=$(chroot_run "$web" dpkg-query -W -f '${Version}' nginx-light)
if apt_retry install -y --no-install-recommends "nginx-light=$bver"; then
	installed_as=same
else
	echo "note: B's nginx-light $bver is not on the mirror any more; installing the mirror's"
	installed_as=newer
	apt_retry install -y --no-install-recommends nginx-light ||
		fatal "apt-get install nginx-light in A failed: $(tail -n 3 "$TEST_TMP/apt.out")"
fi
assert_ok chroot_run "$m" apt-get clean
rm -f "$m/usr/sbin/policy-rc.d"
umount "$m/dev" "$m/proc" || fatal "unmount /dev, /proc in A"
# shellcheck disable=SC2016
aver=$(chroot_run "$m" dpkg-query -W -f '${Version}' nginx-light 2>/dev/null)
[ -n "$aver" ] || fatal "nginx-light is not installed in A"
echo "nginx-light in A: $aver, in B: $bver ($installed_as)"
mkdir -p "$TEST_TMP/dpkg1"
cp "$m"/var/lib/dpkg/info/*.list "$m"/var/lib/dpkg/info/*.conffiles "$TEST_TMP/dpkg1/"
# The packages apt installed, by their .list files.
comm -13 <(cd "$TEST_TMP/dpkg0" && printf '%s\n' *.list) <(cd "$TEST_TMP/dpkg1" && printf '%s\n' *.list) |
	sed 's/\.list$//' >"$TEST_TMP/newpkgs"
echo "installed in A: $(tr '\n' ' ' <"$TEST_TMP/newpkgs")"
[ -s "$TEST_TMP/newpkgs" ] || fatal "apt installed no package"

# The changes.  Paths dpkg knows are accounted for in the expected output of
# dpkg --verify below.
echo "edited by the lifecycle test" >>"$m/etc/motd"
echo "# edited by the lifecycle test" >>"$m/etc/nginx/nginx.conf"
chmod 0700 "$m/usr/bin/dpkg-deb"                  # a unified file: copied up
chmod 0600 "$m/usr/share/nginx/html/index.html"   # a new file: shared in redirect only
rm "$m/usr/share/common-licenses/Apache-2.0"      # a unified file
rm "$m/usr/share/vim/registry/nginx.yaml"         # a new file
mv "$m/usr/share/doc/apt" "$m/usr/share/doc/apt-moved" ||
	fatal "mv of a lower directory (EXDEV, copied by mv) failed"
mv "$m/usr/share/doc/libnginx-mod-http-echo" "$m/usr/share/doc/libnginx-mod-http-echo.moved" ||
	fatal "mv of a new directory failed"
rm -r "$m/usr/share/doc/bsdutils"                 # a directory becomes a file
echo "was a directory" >"$m/usr/share/doc/bsdutils"
rm "$m/etc/hostname"                              # a file becomes a directory
mkdir "$m/etc/hostname"
echo "was a file" >"$m/etc/hostname/note"
rm -r "$m/usr/share/doc/gzip"                     # a directory made again: opaque
mkdir "$m/usr/share/doc/gzip"
echo "made again" >"$m/usr/share/doc/gzip/README.lifecycle"
mkdir -p "$m/opt/lifecycle"                       # new files, one hard-linked
head -c 300000 /dev/urandom >"$m/opt/lifecycle/data"
printf '#!/bin/sh\necho lifecycle\n' >"$m/usr/local/bin/lifecycle-tool"
chmod 755 "$m/usr/local/bin/lifecycle-tool"
ln "$m/usr/local/bin/lifecycle-tool" "$m/usr/local/sbin/lifecycle-tool"

# What dpkg --verify must say: every path a package lists (duplicates
# included: dpkg reports per package) that the changes above touched.
expect_verify() {
	local f
	for f in "$TEST_TMP"/dpkg1/*.list; do
		awk -v conff="${f%.list}.conffiles" '
		BEGIN { while ((getline l < conff) > 0) c[l] = 1 }
		function out(what, p, err) { printf "%-9s %s %s%s\n", what, (p in c) ? "c" : " ", p, err }
		function at_or_below(p, d) { return p == d || index(p, d "/") == 1 }
		function below(p, d) { return index(p, d "/") == 1 }
		{
			p = $0
			if (p == "/etc/motd" || p == "/etc/nginx/nginx.conf") out("??5??????", p, "")
			else if (p == "/usr/share/common-licenses/Apache-2.0" || p == "/usr/share/vim/registry/nginx.yaml" ||
				 at_or_below(p, "/usr/share/doc/apt") || at_or_below(p, "/usr/share/doc/libnginx-mod-http-echo") ||
				 below(p, "/usr/share/doc/gzip")) out("missing", p, "")
			else if (below(p, "/usr/share/doc/bsdutils")) out("missing", p, " (Not a directory)")
		}' "$f"
	done | LC_ALL=C sort
}
expect_verify >"$TEST_TMP/verify.expected"
# verify ROOT OUT: dpkg --verify in ROOT, sorted.  It exits 0 or 1 when it
# could check everything (dpkg 1.21 exits 0 even when it reports problems).
verify() {
	local rc=0
	chroot_run "$1" dpkg --verify >"$2.raw" 2>"$2.err" || rc=$?
	LC_ALL=C sort "$2.raw" >"$2"
	[ "$rc" -le 1 ] || _fail "dpkg --verify in $1: exit $rc: $(head -n 3 "$2.err")"
}
manifest "$m" "$TEST_TMP/A.view.man" "${mopt[@]}"
verify "$m" "$TEST_TMP/verify.before"
assert_same_manifest "$TEST_TMP/verify.expected" "$TEST_TMP/verify.before" \
	"dpkg --verify in A before unify names exactly the changed files ($(wc -l <"$TEST_TMP/verify.expected") lines)"
upper_du() { # apparent bytes in A's upper, and the same without apt's lists
	# (and, in the redirect layout, without hard-link groups, which stay in
	# the upper by design: docs/DESIGN.md)
	local all lists groups=0
	all=$(du -sb "${home[A]}/upper" | cut -f1)
	lists=$(du -sb "${home[A]}/upper/var/lib/apt/lists" 2>/dev/null | cut -f1)
	if [ "$LAYOUT" = redirect ]; then
		groups=$(find "${home[A]}/upper" -type f -links +1 -printf '%i %s\n' | sort -u |
			awk '{ s += $2 } END { print s + 0 }')
	fi
	echo "$all $((all - ${lists:-0} - groups))"
}
read -r upper_before upper_before_nolists < <(upper_du)
assert_ok "${V[@]}" umount A
upper_blocks_before=$(json '.guests[] | select(.name == "A") | .upper_bytes')
objects1=$(json .pool.objects)
object_names >"$TEST_TMP/objects1"

assert_ok "${V[@]}" unify || exit 1
cat "$LAST_STDOUT"
objects2=$(json .pool.objects)
object_names >"$TEST_TMP/objects2"
new_objects=$(comm -13 "$TEST_TMP/objects1" "$TEST_TMP/objects2" | wc -l)
read -r upper_after upper_after_nolists < <(upper_du)
upper_blocks_after=$(json '.guests[] | select(.name == "A") | .upper_bytes')

assert_ok "${V[@]}" mount A "$m" || exit 1
manifest "$m" "$TEST_TMP/A.view2.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/A.view.man" "$TEST_TMP/A.view2.man" "A's view after unify equals the recorded one"
verify "$m" "$TEST_TMP/verify.after"
assert_same_manifest "$TEST_TMP/verify.expected" "$TEST_TMP/verify.after" \
	"dpkg --verify in A after unify names exactly the changed files"
assert_ok chroot_run "$m" /usr/sbin/nginx -V # runs on B's objects; -t would write /run
echo "upper of A: $upper_before bytes before unify, $upper_after after" \
	"(without /var/lib/apt/lists: $upper_before_nolists, $upper_after_nolists)"
if [ $((upper_after_nolists * 5)) -lt "$upper_before_nolists" ]; then
	_pass "A's upper is small again: $upper_after_nolists < 20% of $upper_before_nolists bytes (apt lists and hard-link groups aside)"
else
	_fail "A's upper is not small again: $upper_after_nolists bytes, was $upper_before_nolists (apt lists aside)"
	(cd "${home[A]}/upper" && find . -type f -size +20k -printf '%s %p\n' | sort -rn | head -n 15 | sed 's/^/    /')
fi

# The newly installed files: every one A did not change and whose content B
# has (same md5sum in B's dpkg database) must be the very object B uses.
# A file chmod'ed shares its content in the redirect layout only.
changed_re='etc/nginx/nginx\.conf|usr/share/vim/registry/nginx\.yaml|usr/share/doc/libnginx-mod-http-echo/.*'
[ "$LAYOUT" = link ] && changed_re+='|usr/share/nginx/html/index\.html'
changed_re="^($changed_re)\$"
pkg_files=0 same_content=0 shared=0
: >"$TEST_TMP/not-shared"
while read -r pkg; do
	[ -f "$m/var/lib/dpkg/info/$pkg.md5sums" ] || continue
	while read -r sum rel; do
		pkg_files=$((pkg_files + 1))
		[[ $rel =~ $changed_re ]] && continue
		bsum=$(awk -v p="$rel" '$2 == p { print $1 }' "$web/var/lib/dpkg/info/$pkg.md5sums" 2>/dev/null)
		[ "$bsum" = "$sum" ] || continue
		same_content=$((same_content + 1))
		# /lib/... is /usr/lib/... in a merged-/usr guest
		real=$(chroot "$m" readlink -m "/$rel")
		real=${real#/}
		ida='' idb=''
		ida=$(lower_id A "$real") && idb=$(lower_id B "$real") && [ "$ida" = "$idb" ] &&
			shared=$((shared + 1)) && continue
		echo "/$real: A ${ida:-(none)} B ${idb:-(none)}" >>"$TEST_TMP/not-shared"
	done <"$m/var/lib/dpkg/info/$pkg.md5sums"
done <"$TEST_TMP/newpkgs"
assert_eq "$same_content" "$shared" "the $same_content new files of A whose content B has are B's objects ($pkg_files package files)"
_show "$TEST_TMP/not-shared" "not shared"
[ "$installed_as" = same ] && [ "$same_content" -lt $((pkg_files * 9 / 10)) ] &&
	_fail "only $same_content of $pkg_files package files have B's content although the versions are equal"
id=$(lower_id A usr/sbin/nginx) || _fail "/usr/sbin/nginx of A is no unified entry"
[ -n "$id" ] && assert_eq "$id" "$(lower_id B usr/sbin/nginx)" "A's /usr/sbin/nginx is B's object ($id)"
# New objects: content B had in its upper only (dpkg's database entries of
# the packages, which A now has too; in the link layout also A's own copies
# of B's content where the metadata differ), and content of A alone: the
# files the test changed or made, and the few that dpkg and apt wrote for A
# alone.  Contents are the first 64 digits of object names.
comm -13 "$TEST_TMP/objects1" "$TEST_TMP/objects2" >"$TEST_TMP/objects.new"
lower_map A | sort >"$TEST_TMP/A.map"
cut -c 1-64 "$pool/guests/B/refs" | sort -u >"$TEST_TMP/B.contents"
new_with_b=$(cut -c 1-64 "$TEST_TMP/objects.new" | sort | join - "$TEST_TMP/B.contents" | wc -l)
join "$TEST_TMP/objects.new" "$TEST_TMP/A.map" | awk '{ $1 = substr($1, 1, 64); print }' | sort |
	join -v 1 - "$TEST_TMP/B.contents" >"$TEST_TMP/objects.new.A-only"
new_a_only=$(cut -d' ' -f1 "$TEST_TMP/objects.new.A-only" | sort -u | wc -l)
echo "new objects: $new_objects; $new_with_b hold content B has, $new_a_only contents are A's alone:"
cut -d' ' -f2- "$TEST_TMP/objects.new.A-only" | sort | sed 's/^/    \//'
if [ $((new_a_only * 10)) -lt "$pkg_files" ]; then
	_pass "few new contents of A alone: $new_a_only for $pkg_files installed files"
else
	_fail "too many new contents of A alone: $new_a_only for $pkg_files installed files"
fi
# What is left in the upper under the system paths: nothing but secrets
# (SPEC, "What gets unified"), the files A changed included; and, in the
# redirect layout, files with several hard links, which stay in the upper
# by design (docs/DESIGN.md: a group cannot leave it atomically).
links=()
[ "$LAYOUT" = redirect ] && links=(-links 1)
(
	cd "${home[A]}/upper" || exit
	for d in etc usr opt boot; do
		[ -d "$d" ] && find "$d" -type f -size +0 "${links[@]}" ! -path 'etc/shadow*' ! -path 'etc/gshadow*' \
			! -path 'etc/ssh/ssh_host_*_key' -printf '/%p\n'
	done
) | sort >"$TEST_TMP/A.upper.system"
assert_eq 0 "$(wc -l <"$TEST_TMP/A.upper.system")" "no file under the system paths is left in A's upper"
_show "$TEST_TMP/A.upper.system" "left in the upper"
assert_ok "${V[@]}" umount A

# Isolation: A's life left B as it was.
assert_ok "${V[@]}" mount B "$TEST_TMP/mnt/B" || exit 1
manifest "$TEST_TMP/mnt/B" "$TEST_TMP/B.view2.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/B.view.man" "$TEST_TMP/B.view2.man" "B's view is unchanged"
assert_ok "${V[@]}" umount B

# ---- 2. fsck finds a corrupted object ------------------------------------------

assert_status 0 "${V[@]}" fsck
tail -n 1 "$LAST_STDOUT"
obj=$(object_of A usr/sbin/nginx) # A's and B's
if [ -z "$obj" ] || [ ! -f "$obj" ]; then
	_fail "no object for A's /usr/sbin/nginx"
else
	name=$(basename "$obj")
	cp -p "$obj" "$TEST_TMP/obj.saved" # content and times (the link layout's object is the file)
	byte=$(od -An -tu1 -N1 "$obj" | tr -d ' ')
	# shellcheck disable=SC2059 # the format is the octal escape
	printf "\\$(printf '%03o' $((byte ^ 255)))" | dd of="$obj" bs=1 count=1 conv=notrunc status=none
	assert_status 1 "${V[@]}" fsck
	if grep -qF "$name" "$LAST_STDOUT"; then
		_pass "fsck names the corrupted object $name"
	else
		_fail "fsck does not name the corrupted object $name"
		_show "$LAST_STDOUT" stdout
	fi
	# shellcheck disable=SC2059
	printf "\\$(printf '%03o' "$byte")" | dd of="$obj" bs=1 count=1 conv=notrunc status=none
	touch -r "$TEST_TMP/obj.saved" "$obj"
	cmp -s "$obj" "$TEST_TMP/obj.saved" || _fail "could not repair $obj"
	assert_status 0 "${V[@]}" fsck
fi

# ---- 3. a detached guest, remove and gc -----------------------------------------

assert_ok "${V[@]}" mount C "$TEST_TMP/mnt/C" || exit 1
# A mount namespace made while C is mounted (a container manager starting
# something) keeps a copy of C's overlay: C's own filesystem must still
# come off once C is unmounted here (a metadata image opened through this
# namespace's mount of it kept it busy).
unshare -m --propagation slave sleep 60 &
ns_pid=$!
defer kill "$ns_pid"
sleep 1
manifest "$TEST_TMP/mnt/C" "$TEST_TMP/C.view.man" "${mopt[@]}"
assert_ok "${V[@]}" umount C
# The objects only B, only C use; C's files of its own are referenced by C alone.
for g in B C; do
	for i in 1 2 3 4; do
		object_of "$g" "opt/$g-only/f$i" || _fail "$g's /opt/$g-only/f$i is no unified entry"
	done >"$TEST_TMP/$g-only.objects"
done
cp "$pool/guests/C/refs" "$TEST_TMP/C.refs"

umount "$TEST_TMP/C.fs" || fatal "unmount C's filesystem"
detach_image "$cimg"
assert_eq false "$(json '.guests[] | select(.name == "C") | .attached')" "status: C is not attached"

if [ "$LAYOUT" = redirect ]; then
	# The metadata image is the record (docs/FORMAT.md, format 4): no
	# stubs on disk, and remove materializes B from the image.
	[ -f "${home[B]}/meta.img" ] || _fail "B has no metadata image"
	[ ! -e "${home[B]}/meta" ] || _fail "B has stubs on disk beside its image"
fi
assert_ok "${V[@]}" remove B
cat "$LAST_STDOUT"
if [ "$LAYOUT" = redirect ]; then
	[ ! -e "${home[B]}/meta.img" ] || _fail "remove left B's metadata image"
fi
manifest "${home[B]}/upper" "$TEST_TMP/B.removed.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/B.view.man" "$TEST_TMP/B.removed.man" "removed B's home holds its whole view"
assert_eq "" "$(json '.guests[] | select(.name == "B") | .name')" "B is no longer registered"

gc_objects_before=$(json .pool.objects)
gc_bytes_before=$(json .pool.object_bytes)
assert_ok "${V[@]}" gc
gc_line=$(cat "$LAST_STDOUT")
echo "$gc_line"
gc_objects_after=$(json .pool.objects)
gc_bytes_after=$(json .pool.object_bytes)
gc_freed=$((gc_bytes_before - gc_bytes_after))
gc_deleted=$(sed -nE 's/^gc: ([0-9]+) objects .* deleted.*/\1/p' <<<"$gc_line")
assert_eq "$((gc_objects_before - gc_objects_after))" "$gc_deleted" "gc says how many objects it deleted"
[[ $gc_line == *"not attached"* ]] || _fail "gc does not mention the guest that is not attached"
n=0
while read -r o; do [ -e "$o" ] && n=$((n + 1)); done <"$TEST_TMP/B-only.objects"
assert_eq 0 "$n" "gc deleted the objects only B used"
n=0
while read -r o; do [ -e "$pool/objects/${o:0:2}/$o" ] || n=$((n + 1)); done <"$TEST_TMP/C.refs"
assert_eq 0 "$n" "gc kept every object of C (not attached) ($(wc -l <"$TEST_TMP/C.refs") refs)"
[ "$gc_freed" -gt 10000000 ] || _fail "gc freed only $gc_freed bytes (B's python3 alone is more)"

assert_status 0 "${V[@]}" fsck
if grep -q "guest C: .*not attached" "$LAST_STDOUT"; then
	_pass "fsck reports C as not attached"
else
	_fail "fsck does not report C as not attached"
	_show "$LAST_STDOUT" stdout
fi

attach_c || fatal "re-attach $cimg"
assert_eq true "$(json '.guests[] | select(.name == "C") | .attached')" "status: C is attached again"
assert_ok "${V[@]}" mount C "$TEST_TMP/mnt/C" || exit 1
manifest "$TEST_TMP/mnt/C" "$TEST_TMP/C.view2.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/C.view.man" "$TEST_TMP/C.view2.man" "C re-attached after gc is intact"
assert_ok "${V[@]}" umount C
assert_status 0 "${V[@]}" fsck

# ---- 4. export ----------------------------------------------------------------------

mkfs_loop 2G ext4 "$TEST_TMP/export.fs"
assert_ok "${V[@]}" export A "$TEST_TMP/export.fs/A"
manifest "$TEST_TMP/export.fs/A" "$TEST_TMP/A.export.man" "${mopt[@]}"
assert_same_manifest "$TEST_TMP/A.view.man" "$TEST_TMP/A.export.man" "export of A equals A's view"

echo "FIGURES layout=$LAYOUT nginx_light=$aver/$bver($installed_as) packages_installed=$(wc -l <"$TEST_TMP/newpkgs")" \
	"package_files=$pkg_files shared_with_B=$shared objects_initial=$objects0 objects_before_reunify=$objects1" \
	"objects_after_reunify=$objects2 new_objects=$new_objects(content_of_B=$new_with_b,contents_of_A_alone=$new_a_only) upper_bytes_du=$upper_before->$upper_after" \
	"upper_bytes_du_without_apt_lists=$upper_before_nolists->$upper_after_nolists" \
	"upper_bytes_status=$upper_blocks_before->$upper_blocks_after gc_deleted_objects=$gc_deleted gc_freed_bytes=$gc_freed"
