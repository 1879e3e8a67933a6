# shellcheck shell=bash
# lib.sh: what the kvfs mount tests share.  Sourced, not run.
#
# tests/lib.sh gives each test a fresh temporary directory ($WORK), starts
# kvfs daemons in the foreground on fresh stores (mount_kvfs), and
# unmounts and stops them in an EXIT trap however the test ends; a failed
# test shows the whole kvfs log.  Here: unmounting, the check of a failing
# call's error, and `finish`, which checks that every daemon still running
# unmounts and exits with status 0 and fails if any check failed.
#
# Environment: KVFS and KVCTL name the binaries (meson sets them).  Without
# /dev/fuse the test fails, unless KVFS_ALLOW_SKIP=1: then it is skipped
# (exit 77).
: "${KVFS:?KVFS must name the kvfs binary}"
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${KVCTL:?KVCTL must name the kvctl binary}"

if [ ! -c /dev/fuse ]; then
	echo "/dev/fuse is missing: kvfs cannot mount here" >&2
	[ "${KVFS_ALLOW_SKIP:-0}" = 1 ] && exit 77
	exit 1
fi

work_dir kvfs-test
LOG_LINES=+1 # the whole of each log

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

# finish: unmount every kvfs still running, check that each exits with
# status 0 (which also catches leaks under the sanitizers), print the plan
# and fail if any check failed.
finish() {
	local p status
	cd /
	for p in "${PIDS[@]}"; do
		[ -n "${MOUNT_OF[$p]:-}" ] && kill -0 "$p" 2>/dev/null || continue
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
