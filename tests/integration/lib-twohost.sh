# shellcheck shell=bash
# Two hosts on one machine, for the failover tests (t60-*).  Source after
# lib.sh:
#
#   . "$(dirname "$0")/lib-twohost.sh"
#   twohost_start            # host B: a real sshd in a mount namespace of its own
#   on_b CMD ARGS...         # run CMD on host B (in its mount namespace)
#   "$VUNIFY" ... replica add "root@127.0.0.1:$B_POOL"   # goes through ssh
#
# Host A is this shell (the root mount namespace).  Host B is Debian's
# OpenSSH sshd, started by the test on a free loopback port with a host key
# and an authorized user key made in $TEST_TMP, inside `unshare -m` (its own
# private mount namespace, made before anything of the test is mounted): a
# filesystem mounted on one host is not visible on the other, like two
# machines.  Every transfer between them goes through ssh and rsync for
# real; B runs `vunify` from its PATH, which the sshd sets (SetEnv) to the
# directory of $VUNIFY.  sshd is stopped at exit.
#
# Variables set: B_PID (sshd, the holder of B's namespace), B_PORT,
# VUNIFY_SSH (exported: "ssh -F CONFIG"), B_HOST (root@127.0.0.1).

twohost_start() {
	local d=$TEST_TMP/ssh port i
	need_cmd /usr/sbin/sshd ssh ssh-keygen rsync unshare nsenter
	# HOME: B's login shell reads no profile of this machine's root (the
	# remote user's shell startup is not vunify's to time)
	mkdir -p "$d/home" && chmod 700 "$d" || fatal "mkdir $d"
	ssh-keygen -q -t ed25519 -N '' -f "$d/host_key" >/dev/null || fatal "ssh-keygen host key"
	ssh-keygen -q -t ed25519 -N '' -f "$d/user_key" >/dev/null || fatal "ssh-keygen user key"
	cp "$d/user_key.pub" "$d/authorized_keys"
	chmod 600 "$d/authorized_keys"
	# a free port on the loopback interface
	for i in $(seq 1 50); do
		port=$((20000 + (RANDOM % 20000)))
		ss -ltn "sport = :$port" 2>/dev/null | grep -q LISTEN || break
	done
	B_PORT=$port
	mkdir -p /run/sshd # privilege separation directory
	cat >"$d/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PidFile $d/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv PATH=$(dirname "$VUNIFY"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=$d/home
LogLevel ERROR
CFG
	echo "[127.0.0.1]:$port $(cut -d' ' -f1-2 "$d/host_key.pub")" >"$d/known_hosts"
	cat >"$d/ssh_config" <<CFG
Host *
	Port $port
	User root
	IdentityFile $d/user_key
	IdentitiesOnly yes
	UserKnownHostsFile $d/known_hosts
	StrictHostKeyChecking yes
	BatchMode yes
	LogLevel ERROR
CFG
	/usr/sbin/sshd -t -f "$d/sshd_config" || fatal "sshd -t: bad test config"
	# -D: stays in the foreground, so $! is sshd itself and holds the namespace
	unshare -m --propagation private /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>"$d/sshd.log" &
	B_PID=$!
	defer twohost_stop
	for i in $(seq 1 100); do
		ssh -F "$d/ssh_config" 127.0.0.1 true 2>/dev/null && break
		kill -0 "$B_PID" 2>/dev/null || fatal "sshd died: $(cat "$d/sshd.log")"
		sleep 0.1
	done
	ssh -F "$d/ssh_config" 127.0.0.1 true || fatal "cannot ssh to the test sshd on port $port"
	B_HOST=root@127.0.0.1
	VUNIFY_SSH="ssh -F $d/ssh_config"
	export VUNIFY_SSH B_HOST B_PORT B_PID
}

# Stop host B's sshd (and with it B's mount namespace: its mounts go when
# the last process in it exits).
twohost_stop() {
	[ -n "${B_PID:-}" ] || return 0
	# mounts made in B's namespace, deepest first
	nsenter -t "$B_PID" -m sh -c "findmnt -rn -o TARGET | grep '^$TEST_TMP' | sort -r | xargs -r -n1 umount -l" 2>/dev/null
	kill "$B_PID" 2>/dev/null
	wait "$B_PID" 2>/dev/null
	B_PID=
}

# on_b CMD ARGS...: run CMD on host B (its mount namespace; same machine).
on_b() {
	nsenter -t "$B_PID" -m -- "$@"
}

# attach_a IMG DIR / attach_b IMG DIR: mount a guest's partition image on
# host A or B (the DRBD switch this kernel cannot load: the image is
# detached from one host before it is attached on the other).
attach_a() {
	mkdir -p "$2" && mount -o loop "$1" "$2"
}
attach_b() {
	on_b mkdir -p "$2" && on_b mount -o loop "$1" "$2"
}
detach_a() {
	umount "$1"
}
detach_b() {
	on_b umount "$1"
}
