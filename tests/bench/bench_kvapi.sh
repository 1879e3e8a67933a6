#!/usr/bin/env bash
# bench_kvapi: requests per second of values GET and PUT against kvapi on
# loopback (wrk, 4 connections, a store on the real disk under /var/tmp),
# next to the same operations done by `kvctl get`/`kvctl put`, one process
# each, printed as a ratio against kvctl.  A benchmark, never a test.
#   KVAPI=... KVCTL=... tests/bench/bench_kvapi.sh [SECONDS]
set -euo pipefail
: "${KVAPI:?}" "${KVCTL:?}"
SECS=${1:-5}
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
GET=$(timeout $((SECS + 30)) wrk -t2 -c4 -d"${SECS}s" "$URL" | rps)
PUT=$(timeout $((SECS + 30)) wrk -t2 -c4 -d"${SECS}s" -s "$WORK/put.lua" "$URL" | rps)
# kvctl: one process per operation, for as long.
count() {
	local n=0 end=$(($(date +%s) + SECS))
	while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null; n=$((n + 1)); done
	echo "scale=1; $n / $SECS" | bc
}
CGET=$(count timeout 10 "$KVCTL" "$WORK/root/$NS" get key)
CPUT=$(count timeout 10 "$KVCTL" "$WORK/root/$NS" put key 'hello world')
printf 'values GET: kvapi %8.1f req/s   kvctl get %8.1f /s   ratio %.1f\n' "$GET" "$CGET" "$(echo "$GET / $CGET" | bc -l)"
printf 'values PUT: kvapi %8.1f req/s   kvctl put %8.1f /s   ratio %.1f\n' "$PUT" "$CPUT" "$(echo "$PUT / $CPUT" | bc -l)"
