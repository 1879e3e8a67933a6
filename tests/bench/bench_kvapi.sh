#!/usr/bin/env bash
# bench_kvapi: requests per second of values GET and PUT against kvapi on
# loopback (wrk, 4 connections, a store on the real disk under /var/tmp),
# next to the same operations done by `kvctl get`/`kvctl put`, one process
# each, printed as a ratio against kvctl.  Each operation runs RUNS (3)
# pairs, kvapi then kvctl, alternating; the median of each and the median
# of the pair ratios are printed.  A benchmark, never a test.
#   BUILD_DIR=build tests/bench/bench_kvapi.sh [SECONDS]
#   (or KVAPI=... KVCTL=...; build with --buildtype=release for figures)
set -euo pipefail
KVAPI=${KVAPI:-${BUILD_DIR:+$BUILD_DIR/tools/kvapi/kvapi}}
KVCTL=${KVCTL:-${BUILD_DIR:+$BUILD_DIR/tools/kvctl/kvctl}}
: "${KVAPI:?set BUILD_DIR or KVAPI}" "${KVCTL:?set BUILD_DIR or KVCTL}"
SECS=${1:-5}
RUNS=${RUNS:-3}
WORK=$(mktemp -d /var/tmp/kvapi-bench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root"
timeout 600 "$KVAPI" --listen 127.0.0.1:0 "$WORK/root" 2>"$WORK/log" &
PID=$!
for _ in $(seq 200); do grep -q serving "$WORK/log" 2>/dev/null && break; sleep 0.05; done
ADDR=$(sed -n 's/^kvapi: serving .* on \([0-9.:]*\) .*/\1/p' "$WORK/log")
BASE="http://$ADDR/client/v4/accounts/a/storage/kv/namespaces"
NS=$(timeout 10 curl -sS -X POST -d '{"title":"bench"}' "$BASE" | jq -r .result.id)
URL="$BASE/$NS/values/key"
timeout 10 curl -sS -X PUT --data-binary 'hello world' "$URL" >/dev/null
cat >"$WORK/put.lua" <<'LUA'
wrk.method = "PUT"
wrk.body = "hello world"
LUA
rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'; }
# kvctl: one process per operation, for as long.
count() {
	local n=0 end=$(($(date +%s) + SECS))
	while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null; n=$((n + 1)); done
	awk -v n="$n" -v s="$SECS" 'BEGIN { printf "%.1f", n / s }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# row NAME WRK_ARGS... -- KVCTL_ARGS...: RUNS alternating pairs.
row() {
	local name=$1 i a c wrk_args=() ctl_args=()
	shift
	while [ "$1" != -- ]; do wrk_args+=("$1"); shift; done
	shift
	ctl_args=("$@")
	: >"$WORK/a"; : >"$WORK/c"; : >"$WORK/r"
	for i in $(seq "$RUNS"); do
		a=$(timeout $((SECS + 30)) wrk -t2 -c4 -d"${SECS}s" "${wrk_args[@]}" "$URL" | rps)
		c=$(count timeout 10 "$KVCTL" "$WORK/root/$NS" "${ctl_args[@]}")
		echo "$a" >>"$WORK/a"; echo "$c" >>"$WORK/c"
		awk -v a="$a" -v c="$c" 'BEGIN { printf "%.2f\n", a / c }' >>"$WORK/r"
	done
	printf '%s: kvapi %8.1f req/s   kvctl %8.1f /s   kvapi is %.1fx (median of %d pairs, ratios %s-%s)\n' \
		"$name" "$(median <"$WORK/a")" "$(median <"$WORK/c")" "$(median <"$WORK/r")" "$RUNS" \
		"$(sort -g "$WORK/r" | head -n 1)" "$(sort -g "$WORK/r" | tail -n 1)"
}
echo "# kvapi on loopback (wrk -t2 -c4, ${SECS} s) vs kvctl, one process an operation; store under /var/tmp ($(stat -f -c %T /var/tmp))"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
row "values GET" -- get key
row "values PUT" -s "$WORK/put.lua" -- put key 'hello world'
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
