# shellcheck shell=bash
# checks.sh: the check helpers every shell test shares, sourced by
# tests/lib.sh.  A test prints one TAP line per check ("ok N - what it
# proves" / "not ok N - ..."), runs every command under a timeout, and ends
# with the plan; it fails if any check failed.

CHECKS=0
FAILED=0

# t CMD...: one command under a timeout (every command in these tests is).
t() {
	timeout "${T_SECONDS:-60}" "$@"
}

ok() {
	CHECKS=$((CHECKS + 1))
	echo "ok $CHECKS - $*"
}

not_ok() {
	CHECKS=$((CHECKS + 1))
	FAILED=$((FAILED + 1))
	echo "not ok $CHECKS - $*"
}

# run CMD...: a command under a timeout; a shell function runs as it is
# (it puts its own commands under timeouts).
run() {
	if declare -F "$1" >/dev/null; then "$@"; else t "$@"; fi
}

# check DESC CMD...: CMD must succeed.
check() {
	local desc=$1 status=0
	shift
	run "$@" >/dev/null || status=$?
	if [ "$status" -eq 0 ]; then ok "$desc"; else not_ok "$desc (exit $status)"; fi
}

# check_eq DESC GOT WANT
check_eq() {
	if [ "$2" == "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		printf '#   got:  %q\n#   want: %q\n' "$2" "$3" | head -c 2000
		echo
	fi
}

# within MS CMD...: CMD (a shell function too) succeeds within MS
# milliseconds; polled every 20 ms, each try at most 10 s.
within() {
	local ms=$1 start
	shift
	start=$(date +%s%3N)
	while :; do
		if T_SECONDS=10 run "$@" >/dev/null 2>&1; then return 0; fi
		[ $(($(date +%s%3N) - start)) -lt "$ms" ] || return 1
		sleep 0.02
	done
}

# tap_plan: print the plan; fail if any check failed.
tap_plan() {
	echo "1..$CHECKS"
	if [ "$FAILED" -ne 0 ]; then
		echo "# $FAILED of $CHECKS checks failed"
		return 1
	fi
}

# check_no_space DESC STATUS CMD...: CMD must exit with STATUS (not die by
# a signal) and say "no space left on device" on stderr.
check_no_space() {
	local desc=$1 want_status=$2 status=0 err
	shift 2
	err=$(run "$@" 2>&1 >/dev/null) || status=$?
	if [ "$status" != "$want_status" ]; then
		not_ok "$desc (exit $status, want $want_status; said: ${err:0:300})"
	elif ! grep -qi "no space left on device" <<<"$err"; then
		not_ok "$desc (said: ${err:0:300})"
	else
		ok "$desc"
	fi
}
