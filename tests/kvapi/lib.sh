# shellcheck shell=bash
# lib.sh: what the kvapi tests share.  Sourced, not run.
#
# A fresh $WORK per test; start_kvapi runs the server in the background on
# a port it picks itself (--listen HOST:0, read back from its log) and sets
# $BASE to the namespaces URL; curl runs under a timeout; the EXIT trap
# stops what the test started (processes by pid, mounts, network
# namespaces).  A test ends with `finish`.
#
# Environment: KVAPI, KVCTL name the binaries, BUILD_DIR the build tree.
set -euo pipefail

: "${KVAPI:?KVAPI must name the kvapi binary}"
: "${KVCTL:?KVCTL must name the kvctl binary}"
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/../checks.sh"

KVFS=${KVFS:-${BUILD_DIR:-/nonexistent}/fs/kvfs}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvapi-test.XXXXXX")
PIDS=()
MOUNTS=()
NETNS=()
ACCOUNT=0123456789abcdef0123456789abcdef

lib_cleanup() {
	local rc=$? p m n
	for m in "${MOUNTS[@]}"; do
		if mountpoint -q "$m" 2>/dev/null; then
			timeout 10 fusermount3 -u "$m" 2>/dev/null ||
				timeout 10 fusermount3 -uz "$m" 2>/dev/null || true
		fi
	done
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
	for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
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

kvctl() { t "$KVCTL" "$@"; }

# start_kvapi ROOT [ARGS...]: serve ROOT; sets KVAPI_PID, ADDR, BASE.
start_kvapi() {
	local root=$1 i
	shift
	mkdir -p "$root"
	: >"$WORK/kvapi.log"
	timeout --foreground 600 "$KVAPI" --listen 127.0.0.1:0 -v "$@" "$root" 2>>"$WORK/kvapi.log" &
	KVAPI_PID=$!
	PIDS+=("$KVAPI_PID")
	for i in $(seq 500); do
		ADDR=$(sed -n 's/^kvapi: serving .* on \([0-9.:]*\) .*/\1/p' "$WORK/kvapi.log" | tail -n 1)
		[ -n "$ADDR" ] && break
		kill -0 "$KVAPI_PID" 2>/dev/null || return 1
		sleep 0.02
	done
	[ -n "$ADDR" ] || return 1
	BASE="http://$ADDR/client/v4/accounts/$ACCOUNT/storage/kv/namespaces"
}

# api [CURL ARGS...] URL: the response body on stdout, the status in
# $WORK/status.
api() {
	t curl -sS -o "$WORK/body" -w '%{http_code}' "$@" >"$WORK/status"
	cat "$WORK/body"
}

status() { cat "$WORK/status"; }

# check_json DESC JQ_FILTER: the last body passes the jq filter (-e).
check_json() {
	if jq -e "$2" "$WORK/body" >/dev/null 2>&1; then
		ok "$1"
	else
		not_ok "$1"
		head -c 600 "$WORK/body" | sed 's/^/#   /'
		echo
	fi
}

# check_error DESC STATUS CODE: the last reply is the failure envelope
# with that HTTP status and Cloudflare code.
check_error() {
	check_eq "$1: HTTP status" "$(status)" "$2"
	check_json "$1: envelope with code $3" \
		"(.success == false) and (.errors | length == 1) and (.errors[0].code == $3)
		 and (.errors[0].message | type == \"string\") and (.messages == []) and (.result == null)"
}

# new_ns TITLE: create a namespace, print its id.
new_ns() {
	api -X POST -H 'Content-Type: application/json' -d "{\"title\":\"$1\"}" "$BASE" >/dev/null
	jq -r .result.id "$WORK/body"
}

kvfs_usable() {
	[ -x "$KVFS" ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null
}

mount_kvfs() {
	local store=$1 mnt=$2 pid i
	shift 2
	mkdir -p "$mnt"
	env --default-signal=INT "$KVFS" -f "$store" "$mnt" "$@" 2>>"$WORK/kvfs.log" &
	pid=$!
	PIDS+=("$pid")
	MOUNTS+=("$mnt")
	for i in $(seq 100); do
		if timeout 5 mountpoint -q "$mnt"; then return 0; fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

finish() { tap_plan; }
