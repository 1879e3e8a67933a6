# shellcheck shell=bash
# lib.sh: what the real-client tests share.  Sourced, not run.
#
# Installs the pinned Cloudflare clients (scripts/install-clients.sh: a test
# FAILS when they cannot be installed, it never skips) and gives each test
# a fresh directory on /var/tmp ($WORK, with its own $HOME so no user's
# wrangler login or config is read).  tests/lib.sh starts kvapi on a
# loopback port (start_kvapi, here with a bearer token: $TOKEN, and an
# account id: $ACCOUNT), mounts stores with kvfs (mount_kvfs), and in an
# EXIT trap unmounts every mount and stops every daemon by its pid,
# however the test ends.  One "ok"/"not ok" line per check; a test ends
# with `finish`, which fails if any check failed.
#
# Environment: KVAPI, KVCTL and KVFS name the binaries (meson sets them).
CLIENTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$CLIENTS_DIR/../lib.sh"
: "${KVAPI:?KVAPI must name the kvapi binary}"
: "${KVCTL:?KVCTL must name the kvctl binary}"

# The install runs with the caller's HOME, where npm keeps its cache.  Its
# own npm calls are bounded (KVFS_NPM_TIMEOUT, twice); this bounds the whole.
if ! NODE_DIR=$(timeout 1500 "$CLIENTS_DIR/../../scripts/install-clients.sh"); then
	echo "Bail out! cannot install wrangler and the cloudflare SDK (scripts/install-clients.sh failed)"
	exit 1
fi
export PATH="$NODE_DIR:$PATH"
WRANGLER_BIN="$CLIENTS_DIR/node_modules/.bin/wrangler"

work_dir kvfs-clients /var/tmp
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config"
mkdir -p "$HOME"

# Every kvapi of these tests wants this token; the account id is any 32
# hex digits.
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ACCOUNT=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$TOKEN" >"$WORK/token"
chmod 600 "$WORK/token"
KVAPI_ARGS=(--token-file "$WORK/token")

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
