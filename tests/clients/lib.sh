# shellcheck shell=bash
# lib.sh: what the real-client tests share.  Sourced, not run.
#
# Installs the pinned Cloudflare clients (scripts/install-clients.sh: a test
# FAILS when they cannot be installed, it never skips), gives each test a
# fresh directory on /var/tmp ($WORK, with its own $HOME so no user's
# wrangler login or config is read), starts kvapi on a free loopback port
# with a bearer token (start_kvapi), mounts stores with kvfs (mount_store),
# and in an EXIT trap unmounts every mount and stops every daemon by its
# pid, however the test ends.  One "ok"/"not ok" line per check; a test
# ends with `finish`, which fails if any check failed.
#
# Environment: KVAPI, KVCTL and KVFS name the binaries (meson sets them).
set -euo pipefail

: "${KVAPI:?KVAPI must name the kvapi binary}"
: "${KVCTL:?KVCTL must name the kvctl binary}"
export LC_ALL=C
CLIENTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$CLIENTS_DIR/../checks.sh"

# The install runs with the caller's HOME, where npm keeps its cache.  Its
# own npm calls are bounded (KVFS_NPM_TIMEOUT, twice); this bounds the whole.
if ! NODE_DIR=$(timeout 1500 "$CLIENTS_DIR/../../scripts/install-clients.sh"); then
	echo "Bail out! cannot install wrangler and the cloudflare SDK (scripts/install-clients.sh failed)"
	exit 1
fi
export PATH="$NODE_DIR:$PATH"
WRANGLER_BIN="$CLIENTS_DIR/node_modules/.bin/wrangler"

WORK=$(mktemp -d /var/tmp/kvfs-clients.XXXXXX)
MOUNTS=()
PIDS=()
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config"
mkdir -p "$HOME"

lib_cleanup() {
	local rc=$? m p
	cd /
	for m in "${MOUNTS[@]}"; do
		timeout 10 fusermount3 -u "$m" 2>/dev/null ||
			timeout 10 fusermount3 -uz "$m" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ]; then
		for f in "$WORK"/kvapi.log "$WORK"/kvfs.log; do
			[ -s "$f" ] || continue
			echo "# ${f##*/} (last 40 lines):"
			tail -n 40 "$f" | sed 's/^/#   /'
		done
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap lib_cleanup EXIT

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

# start_kvapi ROOT: start kvapi on ROOT with a fresh token on a free
# loopback port and wait (at most 10 s) until it accepts connections.
# Sets KVAPI_PID, PORT, TOKEN, ACCOUNT (32 hex digits) and API_BASE
# (http://127.0.0.1:PORT/client/v4).  A port taken between the probe and
# kvapi's bind makes kvapi exit: then another port is tried.
start_kvapi() {
	local root=$1 try
	TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	ACCOUNT=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$TOKEN" >"$WORK/token"
	chmod 600 "$WORK/token"
	for try in 1 2 3; do
		PORT=$(free_port)
		timeout --foreground 900 "$KVAPI" --listen "127.0.0.1:$PORT" \
			--token-file "$WORK/token" "$root" 2>>"$WORK/kvapi.log" &
		KVAPI_PID=$!
		PIDS+=("$KVAPI_PID")
		for _ in $(seq 100); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
				API_BASE="http://127.0.0.1:$PORT/client/v4"
				return 0
			fi
			kill -0 "$KVAPI_PID" 2>/dev/null || break
			sleep 0.1
		done
		echo "# kvapi did not listen on port $PORT (try $try of 3)"
	done
	return 1
}

# mount_store STORE MNT: mount STORE on MNT with kvfs in the foreground (in
# the background of the test) and wait (at most 10 s) until it is mounted.
mount_store() {
	local store=$1 mnt=$2 pid
	: "${KVFS:?KVFS must name the kvfs binary}"
	if [ ! -c /dev/fuse ]; then
		echo "# /dev/fuse is missing: kvfs cannot mount here"
		return 1
	fi
	mkdir -p "$mnt"
	# See tests/fs/lib.sh: a background job starts with SIGINT ignored, and
	# --foreground keeps timeout's signals to the daemon itself.
	env --default-signal=INT timeout --foreground 900 "$KVFS" -f "$store" "$mnt" \
		2>>"$WORK/kvfs.log" &
	pid=$!
	PIDS+=("$pid")
	MOUNTS+=("$mnt")
	for _ in $(seq 100); do
		timeout 5 mountpoint -q "$mnt" && return 0
		kill -0 "$pid" 2>/dev/null || { echo "# kvfs exited before mounting $mnt"; return 1; }
		sleep 0.1
	done
	echo "# kvfs did not mount $mnt within 10 s"
	return 1
}

# check_file DESC FILE WANTFILE: FILE has exactly the bytes of WANTFILE.
check_file() {
	if cmp -s "$2" "$3"; then
		ok "$1"
	else
		not_ok "$1"
		echo "#   got  ($(stat -c %s "$2" 2>/dev/null || echo missing) bytes): $(head -c 200 "$2" 2>/dev/null | od -An -c | head -n 3 | tr -s ' \n' ' ')"
		echo "#   want ($(stat -c %s "$3") bytes): $(head -c 200 "$3" | od -An -c | head -n 3 | tr -s ' \n' ' ')"
	fi
}

# finish: kvapi must still be running (a crash under the sanitizers ends
# it), then it is stopped with SIGTERM and must exit with status 0 (which
# also catches leaks); print the plan and fail if any check failed.
finish() {
	local status=0
	if kill -0 "$KVAPI_PID" 2>/dev/null; then
		kill -TERM "$KVAPI_PID"
		wait "$KVAPI_PID" || status=$?
		check_eq "kvapi stops on SIGTERM with status 0" "$status" "0"
	else
		wait "$KVAPI_PID" || status=$?
		not_ok "kvapi was still running at the end (it exited with status $status)"
	fi
	tap_plan
}
