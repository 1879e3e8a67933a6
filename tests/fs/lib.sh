# shellcheck shell=bash
# lib.sh: what the kvfs mount tests share.  Sourced, not run.
#
# Gives each test a fresh temporary directory ($WORK), starts kvfs daemons
# in the foreground on fresh stores (mount_kvfs), unmounts and stops them in
# an EXIT trap however the test ends, and prints one "ok"/"not ok" line per
# check.  A test ends with `finish`, which fails if any check failed.
#
# Environment: KVFS and KVCTL name the binaries (meson sets them).  Without
# /dev/fuse the test fails, unless KVFS_ALLOW_SKIP=1: then it is skipped
# (exit 77).
set -euo pipefail

: "${KVFS:?KVFS must name the kvfs binary}"
: "${KVCTL:?KVCTL must name the kvctl binary}"
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/../checks.sh"

if [ ! -c /dev/fuse ]; then
	echo "/dev/fuse is missing: kvfs cannot mount here" >&2
	[ "${KVFS_ALLOW_SKIP:-0}" = 1 ] && exit 77
	exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvfs-test.XXXXXX")
MOUNTS=()
PIDS=()
declare -A MOUNT_OF

lib_cleanup() {
	local rc=$? m p
	cd / # a test may stand in a mount, which would keep it busy
	# Not "mountpoint -q" first: the mount of a daemon that died answers
	# ENOTCONN and does not look like a mountpoint, but needs unmounting.
	for m in "${MOUNTS[@]}"; do
		timeout 10 fusermount3 -u "$m" 2>/dev/null ||
			timeout 10 fusermount3 -uz "$m" 2>/dev/null || true
	done
	# An unmounted daemon exits by itself; stop the ones that do not.
	for p in "${PIDS[@]}"; do
		timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true; done
	if [ "$rc" -ne 0 ] && [ -s "$WORK/kvfs.log" ]; then
		echo "# kvfs log:"
		sed 's/^/#   /' "$WORK/kvfs.log"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap lib_cleanup EXIT

# mount_kvfs STORE MNT [ARGS...]: start kvfs -f STORE MNT ARGS in the
# background and wait (at most 10 s) until MNT is mounted.  Sets KVFS_PID.
# Its stderr goes to $MOUNT_LOG if set, else $WORK/kvfs.log.  KVFS_PID is the
# pid of the timeout that runs it (signals and exit status pass through),
# KVFS_DAEMON_PID that of the daemon itself.
mount_kvfs() {
	local store=$1 mnt=$2 i
	shift 2
	mkdir -p "$mnt"
	# A background job of a script starts with SIGINT ignored, and libfuse
	# keeps an ignored signal ignored: restore the default.  --foreground:
	# a signal sent to timeout reaches the daemon once, not its process
	# group (where a sanitizer's helper process may be running).
	env --default-signal=INT timeout --foreground 900 "$KVFS" -f "$store" "$mnt" "$@" \
		2>>"${MOUNT_LOG:-$WORK/kvfs.log}" &
	KVFS_PID=$!
	PIDS+=("$KVFS_PID")
	MOUNT_OF[$KVFS_PID]=$mnt
	MOUNTS+=("$mnt")
	for i in $(seq 100); do
		if timeout 5 mountpoint -q "$mnt"; then
			KVFS_DAEMON_PID=$(pgrep -P "$KVFS_PID" | head -n 1)
			return 0
		fi
		if ! kill -0 "$KVFS_PID" 2>/dev/null; then
			echo "kvfs exited before mounting $mnt" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "kvfs did not mount $mnt within 10 s" >&2
	return 1
}

# unmount_kvfs MNT PID: unmount and wait for the daemon to exit.
unmount_kvfs() {
	t fusermount3 -u "$1"
	timeout 10 tail --pid="$2" -f /dev/null
}

# check_fails DESC ERRTEXT CMD...: CMD must fail and say ERRTEXT on stderr
# (the strerror text of the expected errno, e.g. "File too large").
check_fails() {
	local desc=$1 want=$2 err
	shift 2
	if err=$(run "$@" 2>&1 >/dev/null); then
		not_ok "$desc (succeeded)"
	elif [[ "$err" == *"$want"* ]]; then
		ok "$desc"
	else
		not_ok "$desc (said: $err)"
	fi
}

# finish: unmount every daemon still running, check that each exits with
# status 0 (which also catches leaks under the sanitizers), print the plan
# and fail if any check failed.
finish() {
	local p status
	cd /
	for p in "${PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || continue
		status=0
		t fusermount3 -u "${MOUNT_OF[$p]}" || status=$?
		if [ "$status" -eq 0 ]; then
			within 10000 sh -c '! kill -0 "$0" 2>/dev/null' "$p" || kill -KILL "$p"
			wait "$p" || status=$?
		fi
		check_eq "kvfs on ${MOUNT_OF[$p]##*/} unmounts and exits with status 0" "$status" "0"
	done
	tap_plan
}
