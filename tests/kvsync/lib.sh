# shellcheck shell=bash
# lib.sh: what the kvsync tests share.  Sourced, not run.
#
# Gives each test a fresh temporary directory ($WORK), wrappers that put
# every kvctl and kvsync run under a timeout, one "ok"/"not ok" line per
# check, and an EXIT trap that stops what the test started (background
# processes by their pid, kvfs mounts, network namespaces) however the test
# ends.  A test ends with `finish`, which fails if any check failed.
#
# Environment: KVSYNC and KVCTL name the binaries, BUILD_DIR the build
# tree (meson sets them); TESTS_DIR the tests/ source directory.
set -euo pipefail

: "${KVSYNC:?KVSYNC must name the kvsync binary}"
: "${KVCTL:?KVCTL must name the kvctl binary}"
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/../checks.sh"

SYNC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KVFS=${KVFS:-${BUILD_DIR:-/nonexistent}/fs/kvfs}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvsync-test.XXXXXX")
PIDS=()
MOUNTS=()
NETNS=()

lib_cleanup() {
	local rc=$? p m n
	for m in "${MOUNTS[@]}"; do
		if mountpoint -q "$m" 2>/dev/null; then
			timeout 10 fusermount3 -u "$m" 2>/dev/null ||
				timeout 10 fusermount3 -uz "$m" 2>/dev/null || true
		fi
	done
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
	for n in "${NETNS[@]}"; do
		ip netns del "$n" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ]; then
		for f in "$WORK"/*.log; do
			[ -s "$f" ] || continue
			echo "# ${f##*/}:"
			sed 's/^/#   /' "$f" | tail -n 40
		done
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap lib_cleanup EXIT

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

# stats_field FILE NAME: a figure of a `kvsync --stats` summary.
stats_field() {
	sed -n "s/^$2: *//p" "$1"
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

# kvfs_usable: the kvfs binary was built and FUSE is there.
kvfs_usable() {
	[ -x "$KVFS" ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null
}

# mount_kvfs STORE MNT [ARGS...]: mount in the background, wait until mounted.
mount_kvfs() {
	local store=$1 mnt=$2 pid i
	shift 2
	mkdir -p "$mnt"
	env --default-signal=INT "$KVFS" -f "$store" "$mnt" "$@" 2>>"$WORK/kvfs.log" &
	pid=$!
	PIDS+=("$pid")
	MOUNTS+=("$mnt")
	for i in $(seq 100); do
		if timeout 5 mountpoint -q "$mnt"; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# bg NAME CMD...: start CMD in the background under a long timeout (stdout
# to $WORK/NAME.out, stderr to $WORK/NAME.log); its pid is in $BG_PID and
# it is stopped at exit.  --foreground: a signal sent to timeout reaches
# CMD once, not its whole process group (where a sanitizer's helper
# process may be running and must not be hit).
bg() {
	local name=$1
	shift
	timeout --foreground 600 "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
	BG_PID=$!
	PIDS+=("$BG_PID")
}

# free_port: a TCP port nobody listens on right now.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
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
