# shellcheck shell=bash
# lib.sh: what the kvsync tests share.  Sourced, not run.
#
# tests/lib.sh gives each test its fresh directory ($WORK) and the EXIT
# trap that stops what the test started (background processes by pid,
# kvfs mounts, network namespaces) however it ends, and bg, mount_kvfs,
# free_port and netns_pair.  Here: wrappers that put every kvctl and
# kvsync run under a timeout, checks of an exit status and a message, a
# store's figures and export, and `kvsync serve`.  A test ends with
# `finish`, which fails if any check failed.
#
# Environment: KVSYNC and KVCTL name the binaries, BUILD_DIR the build
# tree (meson sets them); TESTS_DIR the tests/ source directory.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${KVSYNC:?KVSYNC must name the kvsync binary}"
: "${KVCTL:?KVCTL must name the kvctl binary}"

SYNC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work_dir kvsync-test

kvctl() {
	t "$KVCTL" "$@"
}

kvsync() {
	t "$KVSYNC" "$@"
}

# put_values STORE PREFIX N: keys PREFIX1..PREFIXN holding "value 1".."value N".
put_values() {
	local i
	for i in $(seq 1 "$3"); do kvctl "$1" put "$2$i" "value $i" 2>/dev/null; done
}

# synced_pair STORE PEER PREFIX N: put_values STORE PREFIX N, then one
# sync of STORE to PEER: two stores that agree, for a test to set apart.
synced_pair() {
	put_values "$1" "$3" "$4"
	kvsync "$1" "$2" 2>/dev/null
}

# check_exit DESC WANT CMD...: CMD must exit with status WANT; its stderr
# is kept in $WORK/last.err.
check_exit() {
	local desc=$1 want=$2 got=0
	shift 2
	run "$@" >"$WORK/last.out" 2>"$WORK/last.err" || got=$?
	if [ "$got" -eq "$want" ]; then
		ok "$desc"
	else
		not_ok "$desc (exit $got, want $want)"
		sed 's/^/#   /' "$WORK/last.err" | head -n 10
	fi
}

# check_err DESC TEXT: the last check_exit's stderr contains TEXT.
check_err() {
	if grep -qF -- "$2" "$WORK/last.err"; then
		ok "$1"
	else
		not_ok "$1"
		sed 's/^/#   said: /' "$WORK/last.err" | head -n 5
	fi
}

# stat_field STORE NAME: one figure of `kvctl STORE stats` (e.g. feed_head).
stat_field() {
	kvctl "$1" stats | tr -c '[:alnum:]_\n' ' ' |
		awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'
}

# stats_field FILE NAME: a figure of a `kvsync --stats` summary (rsync's
# lines: "Total bytes sent: 1,234"), as a plain number.
stats_field() {
	sed -n "s/^$2: *//p" "$1" | sed 's/ bytes$//; s/,//g'
}

# snapshot STORE FILE: what must not change when nothing is applied: the
# feed head and the whole export.
snapshot() {
	{
		echo "feed_head $(stat_field "$1" feed_head)"
		kvctl "$1" export
	} >"$2"
}

# same_export DESC STORE...: every store exports the same namespace.
same_export() {
	local desc=$1 first=$2 s diff=0
	shift 2
	kvctl "$first" export >"$WORK/export.first"
	for s in "$@"; do
		kvctl "$s" export >"$WORK/export.other"
		cmp -s "$WORK/export.first" "$WORK/export.other" || diff=1
	done
	if [ "$diff" -eq 0 ]; then ok "$desc"; else not_ok "$desc"; fi
}

# serve NAME STORE ARGS...: start `kvsync serve` and wait for it to listen;
# sets SERVE_PID.
serve() {
	local name=$1 store=$2
	shift 2
	bg "$name" "$KVSYNC" serve "$@" "$store"
	SERVE_PID=$BG_PID
	within 10000 grep -q 'serving' "$WORK/$name.log"
}

finish() {
	tap_plan
}
