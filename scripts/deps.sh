#!/bin/sh
# Install the Debian packages vunify's build, tests, demo and benchmark need,
# only those missing (so a machine that has them does not touch the network).
set -eu
pkgs="build-essential libssl-dev libcmocka-dev clang-format cppcheck attr acl
debootstrap jq e2fsprogs xfsprogs util-linux kmod jdupes rdfind ostree time
strace btrfs-progs openssh-server openssh-client rsync systemd-container erofs-utils curl
dpkg-dev debhelper lintian fakeroot bash-completion lxc"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
# apt's output goes to a log, shown only when it fails.
log=${TMPDIR:-/tmp}/vunify-deps.log
echo "deps: installing$missing (apt log in $log)"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
	tail -n 25 "$log" >&2
	echo "deps: apt-get failed; the whole log is $log" >&2
	exit 1
fi
echo "deps: installed"
