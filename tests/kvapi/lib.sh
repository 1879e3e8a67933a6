# shellcheck shell=bash
# lib.sh: what the kvapi tests share.  Sourced, not run.
#
# tests/lib.sh gives each test its fresh $WORK and the EXIT trap that
# stops what the test started (processes by pid, mounts, network
# namespaces); its start_kvapi runs the server in the background on a
# port it picks itself, here with -v (one log line per request, shown
# when a test fails), and sets $BASE to the namespaces URL of $ACCOUNT.
# Here: curl under a timeout and checks of the JSON replies.  A test ends
# with `finish`.
#
# Environment: KVAPI, KVCTL name the binaries, BUILD_DIR the build tree.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${KVAPI:?KVAPI must name the kvapi binary}"
: "${KVCTL:?KVCTL must name the kvctl binary}"

work_dir kvapi-test
ACCOUNT=0123456789abcdef0123456789abcdef
KVAPI_ARGS=(-v)

kvctl() { t "$KVCTL" "$@"; }

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

# api_refused DESC STATUS CODE [CURL ARGS...] URL: the request gets the
# failure envelope with that HTTP status and Cloudflare code.
api_refused() {
	local desc=$1 st=$2 code=$3
	shift 3
	api "$@" >/dev/null
	check_error "$desc" "$st" "$code"
}

finish() { tap_plan; }
