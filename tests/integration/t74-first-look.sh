#!/bin/bash
# A first look as an admin: `vunify status` is a table (guests sorted,
# sizes in KiB/MiB/GiB, where each is mounted, when it was last unified;
# "never" before its first unify), --json carries the same new fields;
# unify and fsck draw a progress line when stderr is a terminal and not
# otherwise; bash completion offers the commands, their options and the
# pool's guests.
. "$(dirname "$0")/lib.sh"
export LC_ALL=C
need_root
need_cmd script jq
need_bin "$VUNIFY"

mkfs_loop 128M tmpfs "$TEST_TMP/data"
pool=$TEST_TMP/data/pool
V=("$VUNIFY" -p "$pool")
assert_ok "${V[@]}" init || exit 1
for g in zeta alpha mid; do
	mkdir -p "$TEST_TMP/src/$g/usr/lib" "$TEST_TMP/src/$g/etc"
	head -c 3000000 /dev/zero | tr '\0' x >"$TEST_TMP/src/$g/usr/lib/big" # 2.9 MiB, shared
	printf '%s\n' "$g" >"$TEST_TMP/src/$g/etc/hostname"
	assert_ok "${V[@]}" add "$g" "$TEST_TMP/data/$g" --from "$TEST_TMP/src/$g"
done

assert_ok "${V[@]}" status
grep -E '^(alpha|mid|zeta) ' "$LAST_STDOUT" | awk '{ print $1 }' >"$TEST_TMP/order"
assert_eq "alpha mid zeta" "$(tr '\n' ' ' <"$TEST_TMP/order" | sed 's/ $//')" "guests sorted"
assert_eq 3 "$(grep -cE ' never +/' "$LAST_STDOUT")" "never unified: 'never'"
head -n 4 "$LAST_STDOUT" | sed 's/^/    /'

t0=$(date +%s)
assert_ok "${V[@]}" unify -q alpha mid
t1=$(date +%s)
mkdir -p "$TEST_TMP/m"
assert_ok "${V[@]}" mount mid "$TEST_TMP/m"
assert_ok "${V[@]}" status
sed 's/^/    /' "$LAST_STDOUT"
grep -q '^GUEST  *MOUNTED AT  *FILES  *UNIFIED  *UPPER  *LAST UNIFY  *HOME$' "$LAST_STDOUT" && _pass "table header" || _fail "no table header"
row() { grep -E "^$1 " "$LAST_STDOUT"; }
case $(row alpha) in
"alpha "*" - "*" 2 "*"2.9 MiB "*" 20"[0-9][0-9]-*) _pass "alpha: not mounted, 2 files, 2.9 MiB, a date" ;;
*) _fail "alpha's row: $(row alpha)" ;;
esac
case $(row mid) in
*" $TEST_TMP/m "*) _pass "mid: where it is mounted" ;;
*) _fail "mid's row: $(row mid)" ;;
esac
case $(row zeta) in
*" never "*) _pass "zeta: never unified" ;;
*) _fail "zeta's row: $(row zeta)" ;;
esac
grep -q 'saved 2.9 MiB' "$LAST_STDOUT" && _pass "pool line: saved in MiB" || _fail "pool line: $(head -n 2 "$LAST_STDOUT")"

assert_ok "${V[@]}" status --json
j=$LAST_STDOUT
at=$(jq '.guests[] | select(.name == "alpha") | .unified_at' "$j")
[ "$at" -ge "$t0" ] && [ "$at" -le "$t1" ] && _pass "json: unified_at $at within the run" || _fail "json: unified_at '$at' not in [$t0, $t1]"
assert_eq null "$(jq '.guests[] | select(.name == "zeta") | .unified_at' "$j")" "json: zeta unified_at null"
assert_eq "$TEST_TMP/m" "$(jq -r '.guests[] | select(.name == "mid") | .mounted_at' "$j")" "json: mounted_at"
assert_eq null "$(jq '.guests[] | select(.name == "alpha") | .mounted_at' "$j")" "json: not mounted, mounted_at null"
assert_eq "alpha,mid,zeta" "$(jq -r '[.guests[].name] | join(",")' "$j")" "json: guests sorted"
assert_ok "${V[@]}" umount mid

# Progress: a line on a terminal (script(1) gives it one), nothing on a pipe.
printf 'new\n' >"$TEST_TMP/data/zeta/upper/etc/motd"
assert_ok script -qefc "$(printf '%q ' "${V[@]}" unify zeta)" "$TEST_TMP/tty.out"
grep -q $'\r\033\\[K.*files' "$TEST_TMP/tty.out" && _pass "unify: progress line on a terminal" || _fail "unify: no progress on a terminal: $(od -c "$TEST_TMP/tty.out" | head -n 5)"
assert_ok script -qefc "$(printf '%q ' "${V[@]}" fsck)" "$TEST_TMP/tty2.out"
grep -q $'\r\033\\[Kfsck: ' "$TEST_TMP/tty2.out" && _pass "fsck: progress line on a terminal" || _fail "fsck: no progress on a terminal"
assert_ok "${V[@]}" fsck
grep -q $'\033' "$LAST_STDERR" "$LAST_STDOUT" && _fail "fsck: escape codes on a pipe" || _pass "fsck: no progress on a pipe"
mkdir -p "$TEST_TMP/data/zeta/upper/etc" # unify may have moved it to the lower layer (lib/prune.h)
printf 'newer\n' >"$TEST_TMP/data/zeta/upper/etc/motd2"
assert_ok "${V[@]}" unify zeta
grep -q $'\033' "$LAST_STDERR" "$LAST_STDOUT" && _fail "unify: escape codes on a pipe" || _pass "unify: no progress on a pipe"

# Bash completion: commands, options, guests (of the -p pool).
mkdir -p "$TEST_TMP/bin"
ln -s "$VUNIFY" "$TEST_TMP/bin/vunify"
complete_words() { # complete_words WORD...: what completion offers for the last WORD
	PATH=$TEST_TMP/bin:$PATH bash -c '
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_vunify; printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$TOP/completion/vunify" "$@"
}
c=$(complete_words vunify "")
case " $c" in
*" add "*" fsck "*" mount "*" status "*" unify "*) _pass "completion: commands ($c)" ;;
*) _fail "completion: commands: '$c'" ;;
esac
assert_eq "umount unify " "$(complete_words vunify u)" "completion: commands by prefix"
case " $c" in
*" objects "* | *" receive "*) _fail "completion offers plumbing: '$c'" ;;
*) _pass "completion: no plumbing commands" ;;
esac
assert_eq "add list rm " "$(complete_words vunify replica "")" "completion: replica's subcommands"
assert_eq "alpha " "$(complete_words vunify -p "$pool" mount al)" "completion: guests of the -p pool"
assert_eq "alpha mid zeta " "$(complete_words vunify -p "$pool" unify "")" "completion: all guests"
case $(complete_words vunify unify --) in
*--dry-run*--skip-mounted*) _pass "completion: unify's options" ;;
*) _fail "completion: unify's options: $(complete_words vunify unify --)" ;;
esac
