#!/bin/bash
# A runtime starts a guest that vunify mounts, and it serves: the Debian
# bookworm-web tree (nginx-light) is added, unified and mounted (with
# `mount -t vunify`-equivalent `vunify mount`), systemd-nspawn runs its
# nginx on a loopback port (nspawn shares the host's network without
# --private-network), and curl on the host fetches the page, byte for byte
# the tree's own.  The nginx binary is a unified file: it
# comes from the pool, not from the guest's upper.
. "$(dirname "$0")/lib.sh"
export LC_ALL=C
need_root
need_cmd systemd-nspawn curl ss
need_bin "$VUNIFY"

"$TOP/scripts/debian-trees.sh" bookworm-web >"$TEST_TMP/trees.out" || fatal "debian-trees.sh failed"
web=$(cat "$TEST_TMP/trees.out")
page=var/www/html/index.nginx-debian.html
[ -f "$web/$page" ] && [ -x "$web/usr/sbin/nginx" ] || fatal "no nginx in $web"

MKFS_EXT4_OPTS="-I 512" mkfs_loop 2G ext4 "$TEST_TMP/fs"
pool=$TEST_TMP/fs/pool
home=$TEST_TMP/fs/web
V=("$VUNIFY" -p "$pool")
assert_ok "${V[@]}" init || exit 1
assert_ok "${V[@]}" add web "$home" --from "$web" || exit 1
assert_ok "${V[@]}" unify -q web || exit 1
[ -e "$home/upper/usr/sbin/nginx" ] && _fail "nginx still in the upper" || _pass "nginx unified (not in the upper)"

root=$TEST_TMP/machines/web
mkdir -p "$root"
assert_ok "${V[@]}" mount web "$root" || exit 1
defer "${V[@]}" umount web

# A free loopback port.
port=
for p in $(shuf -i 20000-29999 -n 20); do
	if ! ss -Hltn "sport = :$p" | grep -q .; then
		port=$p
		break
	fi
done
[ -n "$port" ] || fatal "no free port"
cat >"$root/etc/nginx/vunify-t71.conf" <<EOF
daemon off;
master_process off;
error_log stderr;
pid /run/nginx-t71.pid;
events { worker_connections 16; }
http {
	access_log off;
	server {
		listen 127.0.0.1:$port;
		root /var/www/html;
		index index.nginx-debian.html;
	}
}
EOF

systemd-nspawn --register=no --keep-unit -q -M vunify-t71 -D "$root" \
	/usr/sbin/nginx -c /etc/nginx/vunify-t71.conf >"$TEST_TMP/nspawn.log" 2>&1 &
nspawn=$!
defer kill "$nspawn"
got=
for _ in $(seq 100); do
	if curl -fsS --max-time 2 "http://127.0.0.1:$port/" -o "$TEST_TMP/got.html" 2>/dev/null; then
		got=1
		break
	fi
	kill -0 "$nspawn" 2>/dev/null || break
	sleep 0.1
done
if [ -n "$got" ]; then
	_pass "curl fetched http://127.0.0.1:$port/ from the guest's nginx"
	cmp -s "$web/$page" "$TEST_TMP/got.html" && _pass "the page is the guest's own" ||
		_fail "the page differs from $page"
else
	_fail "no answer on port $port; nspawn said: $(head -c 600 "$TEST_TMP/nspawn.log")"
fi
# The nginx that answered runs from the merged root (its /proc/PID/root).
pid=$(pgrep -f "^/usr/sbin/nginx -c /etc/nginx/vunify-t71.conf" | head -n 1)
if [ -n "$pid" ]; then
	assert_eq "$(stat -c %d:%i "$root")" "$(stat -L -c %d:%i "/proc/$pid/root")" "nginx's root is the vunify mount"
else
	_fail "no nginx process"
fi

kill "$nspawn"
wait "$nspawn" 2>/dev/null
assert_ok "${V[@]}" umount web
assert_eq 0 "$(findmnt -rn --mountpoint "$root" | wc -l)" "guest unmounted after the container stopped"
