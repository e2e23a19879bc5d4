#!/bin/bash
# Run the integration tests: every tests/integration/t[0-9]*.sh in order, or
# only those whose names contain one of the given words:
#
#   tests/integration/run.sh [-v] [WORD...]
#
# Each test runs as its own process with a fresh TEST_TMP under /var/tmp
# (removed afterwards, after unmounting whatever the test left mounted) and
# its output in $VUNIFY_TEST_LOGS (default build/integration-logs)/NAME.log;
# -v shows every test's output, otherwise only a failed test's.  Exit 77
# means skipped.  A test taking longer than $VUNIFY_TEST_TIMEOUT seconds
# (default 3600) is killed and fails.
#
# The last line is always "integration: N passed, M failed, K skipped"; the
# exit status is 1 if a test failed, or if one was skipped while CI=true.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
logs=${VUNIFY_TEST_LOGS:-$top/build/integration-logs}
timeout=${VUNIFY_TEST_TIMEOUT:-3600}
verbose=
if [ "${1:-}" = -v ]; then
	verbose=1
	shift
fi
mkdir -p "$logs" || exit 1

# Unmount what a test left below DIR (deepest first), detach loop devices
# backed by files in it, then remove it without crossing into a filesystem
# that could not be unmounted.
scrub() {
	local d=$1 m dev
	for _ in 1 2 3; do
		m=$({
			findmnt -rn -o TARGET | while read -r t; do
				t=$(printf '%b' "$t")
				case $t in "$d" | "$d"/*) echo "$t" ;; esac
			done
			findmnt -rn -t overlay -o TARGET,OPTIONS | while read -r t o; do
				case $o in *"$d"*) printf '%b\n' "$t" ;; esac
			done
		} | awk '{ print length($0) "\t" $0 }' | sort -rn -u | cut -f2-)
		[ -n "$m" ] || break
		while IFS= read -r t; do
			umount "$t" 2>/dev/null || umount -l "$t" 2>/dev/null
		done <<<"$m"
	done
	losetup -n -O NAME,BACK-FILE -l 2>/dev/null | while read -r dev f; do
		case $f in "$d"/*) losetup -d "$dev" 2>/dev/null ;; esac
	done
	rm -rf --one-file-system "$d"
}

tests=()
for t in "$here"/t[0-9]*.sh; do
	[ -e "$t" ] || continue
	n=$(basename "$t" .sh)
	if [ $# -gt 0 ]; then
		keep=
		for w in "$@"; do
			case $n in *"$w"*) keep=1 ;; esac
		done
		[ -n "$keep" ] || continue
	fi
	tests+=("$t")
done

passed=0
failed=0
skipped=0
for t in "${tests[@]}"; do
	n=$(basename "$t" .sh)
	log=$logs/$n.log
	tmp=$(mktemp -d /var/tmp/vunify-test.XXXX) || exit 1
	start=$(date +%s.%N)
	TEST_TMP=$tmp timeout -k 30 "$timeout" bash "$t" >"$log" 2>&1 </dev/null
	rc=$?
	scrub "$tmp"
	secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	case $rc in
	0)
		passed=$((passed + 1))
		echo "PASS $n (${secs}s)"
		[ -n "$verbose" ] && sed 's/^/    /' "$log"
		;;
	77)
		skipped=$((skipped + 1))
		echo "SKIP $n (${secs}s): $(grep -m1 '^SKIP' "$log" | sed 's/^SKIP: [^:]*: //')"
		;;
	*)
		failed=$((failed + 1))
		[ "$rc" = 124 ] && echo "    (killed after ${timeout}s)" >>"$log"
		echo "FAIL $n (${secs}s, exit $rc; log $log)"
		if [ -n "$verbose" ]; then
			sed 's/^/    /' "$log"
		else
			grep -E '^(FAIL|  |    )' "$log" | head -n 60 | cut -b 1-300 | sed 's/^/    /'
			tail -n 5 "$log" | cut -b 1-300 | sed 's/^/    | /'
		fi
		;;
	esac
done

echo "integration: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] || exit 1
[ "${CI:-}" = true ] && [ "$skipped" != 0 ] && exit 1
exit 0
