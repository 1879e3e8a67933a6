# shellcheck shell=bash
# lib.sh: what the kvctl tests share.  Sourced, not run.
#
# tests/lib.sh gives each test a fresh temporary directory ($WORK,
# removed by an EXIT trap however the test ends, with a small filesystem
# the test mounted), runs every command under a timeout, and prints one
# "ok"/"not ok" line per check.  A test ends with `finish`, which fails if
# any check failed.
#
# Environment: KVCTL names the binary (meson sets it).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${KVCTL:?KVCTL must name the kvctl binary}"

work_dir kvctl-test

# kv ARGS...: kvctl under a timeout.
kv() {
	t "$KVCTL" "$@"
}

# check_refused DESC STATUS MESSAGE CMD...: CMD must exit with STATUS and
# print MESSAGE (exactly, as a whole line) on stderr.
check_refused() {
	local desc=$1 want_status=$2 want=$3 status=0
	shift 3
	t "$@" >/dev/null 2>"$WORK/stderr" || status=$?
	if [ "$status" != "$want_status" ]; then
		not_ok "$desc (exit $status, want $want_status; said: $(head -c 300 "$WORK/stderr"))"
	elif ! grep -qxF -- "$want" "$WORK/stderr"; then
		not_ok "$desc (said: $(head -c 300 "$WORK/stderr"))"
		printf '#   want: %s\n' "$want" | head -c 400
		echo
	else
		ok "$desc"
	fi
}

# state STORE: the store's content and change-feed head, to prove that a
# refused operation changed nothing.
state() {
	kv "$1" export
	kv "$1" stats | grep '"feed_head"'
}

# names: the "name" members of a kvctl list on stdin, one a line (names in
# these tests need no JSON escapes).
names() {
	sed -n 's/^    "name": "\(.*\)",\{0,1\}$/\1/p'
}

# repeat_char C N: the byte C, N times.
repeat_char() {
	head -c "$2" /dev/zero | tr '\0' "$1"
}

# finish: print the plan and fail if any check failed.
finish() {
	tap_plan
}
