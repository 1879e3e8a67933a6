#!/usr/bin/env bash
# test_memory: what all requests together make kvapi hold is bounded by
# --memory-max.  Concurrent 100 MB bulk uploads that stall mid-body, and
# concurrent GETs of a 25 MiB value by clients that do not read, leave its
# peak RSS under the budget plus a fixed overhead; uploads that do not fit
# get 503 with code 10001 and Retry-After (announced: before their body is
# read; chunked: once they outgrow the budget); once the uploads end the
# whole budget is there again (nothing leaked).  A value that changes
# while it is streamed cuts its reply short: the client gets a prefix of
# the old value, never a mix of two.  A bulk get whose JSON would not fit
# is refused.
. "$(dirname "$0")/lib.sh"

# The budget, and the overhead allowed on top of it.  Besides the bytes the
# budget counts, kvapi's RSS grows by: each connection thread's stack and
# libmicrohttpd's per-connection pool (32 KiB), a 256 KiB piece buffer per
# streamed GET (24 here: 6 MiB), the store's pages mapped while a value is
# read (25 MiB once), and under ASan the shadow of what is allocated (1/8:
# 25 MiB for a 200 MiB reservation).  96 MiB covers these; an unbounded
# server reaches 600 MiB over its baseline below, far past 300 + 96.
BUDGET_MIB=300
SLACK_MIB=96
UPLOADS=8
READERS=24

# The RSS high-water mark of the kvapi under the `timeout` of start_kvapi.
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$(pgrep -P "$KVAPI_PID" -x kvapi)/status"; }
# stop_kvapi: stop it; once every request is gone its budget is whole.
stop_kvapi() {
	kill -TERM "$KVAPI_PID"
	t tail --pid="$KVAPI_PID" -f /dev/null
	check "kvapi stopped with its whole budget given back" \
		sh -c "grep -q 'kvapi: stopped' '$WORK/kvapi.log' && ! grep -q 'not given back' '$WORK/kvapi.log'"
}
# check_peak WHAT: kvapi's peak RSS, over its high-water mark at the start
# ($BASE_KIB), stays under the budget plus the overhead allowed.
check_peak() {
	local peak grew
	peak=$(hwm_kib)
	grew=$(((peak - BASE_KIB) / 1024))
	echo "# $1: kvapi VmHWM ${BASE_KIB} kB at start, ${peak} kB at peak (+${grew} MiB)"
	check "peak RSS over the start stays under ${BUDGET_MIB} + ${SLACK_MIB} MiB (+${grew} MiB)" \
		test "$grew" -le $((BUDGET_MIB + SLACK_MIB))
}
count() { local n=0 f; for f in "$@"; do [ -s "$f" ] && n=$((n + 1)); done; echo "$n"; }
# wait_for FILE: poll for it (bounded; what the test then checks says why).
wait_for() { local i; for i in $(seq 1200); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# --- the option ---------------------------------------------------------
rc=0
t "$KVAPI" --memory-max 100M "$WORK/none" 2>"$WORK/usage.err" || rc=$?
check_eq "--memory-max under 200 MiB: usage error" "$rc" 2
check "saying the minimum" grep -q 'at least 200 MiB' "$WORK/usage.err"
rc=0
t "$KVAPI" --memory-max 12X "$WORK/none" 2>/dev/null || rc=$?
check_eq "--memory-max 12X: usage error" "$rc" 2
check "kvapi -h lists --memory-max" sh -c "'$KVAPI' -h | grep -q -- '--memory-max SIZE'"

# --- stalled uploads ----------------------------------------------------
start_kvapi "$WORK/root" --memory-max "${BUDGET_MIB}M"
NS=$(new_ns memory)
HOST=${ADDR%:*}
PORT=${ADDR##*:}
# A bulk body of 100 MB: four values of 25,000,000 bytes.
{
	printf '['
	for k in 1 2 3 4; do
		[ "$k" = 1 ] || printf ','
		printf '{"key":"big%s","value":"' "$k"
		head -c 25000000 /dev/zero | tr '\0' a
		printf '"}'
	done
	printf ']'
} >"$WORK/bulk.json"
SIZE=$(stat -c %s "$WORK/bulk.json")
BASE_KIB=$(hwm_kib)

# upload I: announce the whole body, send 80 MB of it, stall until
# $WORK/go exists, send the rest.  A refused upload's curl exits at once,
# writing its status to $WORK/upI.code.
upload() {
	{
		head -c 80000000 "$WORK/bulk.json" && touch "$WORK/sent$1"
		wait_for "$WORK/go"
		tail -c +80000001 "$WORK/bulk.json"
	} | T_SECONDS=200 t curl -sS -T - -H 'Transfer-Encoding:' -H "Content-Length: $SIZE" \
		-H 'Content-Type: application/json' --expect100-timeout 60 -X PUT \
		-D "$WORK/head$1" -o "$WORK/body$1" -w '%{http_code}' "$BASE/$NS/bulk" >"$WORK/up$1.code" || true
}
UP=()
for i in $(seq "$UPLOADS"); do
	upload "$i" 2>/dev/null &
	UP+=("$!")
	PIDS+=("$!")
done
# Each upload reserves twice its announced length (the body and its parsed
# copy): one fits in the budget, the others wait and are refused.
refused_all() {
	[ "$(count "$WORK"/up*.code)" -ge $((UPLOADS - 1)) ] && ls "$WORK"/sent* >/dev/null 2>&1
}
check "$((UPLOADS - 1)) uploads end while one stalls" within 120000 refused_all
n503=0 n10001=0 nretry=0
for i in $(seq "$UPLOADS"); do
	[ -s "$WORK/up$i.code" ] || continue
	[ "$(cat "$WORK/up$i.code")" = 503 ] && n503=$((n503 + 1))
	jq -e '.success == false and .errors[0].code == 10001 and
	       (.errors[0].message | test("memory limit \\(--memory-max 300 MiB\\): retry later"))' \
		"$WORK/body$i" >/dev/null 2>&1 && n10001=$((n10001 + 1))
	grep -qi '^Retry-After: 1' "$WORK/head$i" && nretry=$((nretry + 1))
done
check_eq "they got 503" "$n503" $((UPLOADS - 1))
check_eq "with code 10001 and the limit in the message" "$n10001" $((UPLOADS - 1))
check_eq "and Retry-After: 1" "$nretry" $((UPLOADS - 1))
check_eq "one upload was taken and is stalled mid-body" "$(ls "$WORK"/sent* | wc -l)" 1
# A chunked bulk body while the budget is full: refused once it outgrows it.
head -c 60000000 "$WORK/bulk.json" >"$WORK/part.json"
api -X PUT -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' \
	--data-binary @"$WORK/part.json" "$BASE/$NS/bulk" >/dev/null
check_error "a chunked 60 MB bulk body past the budget" 503 10001
rm -f "$WORK/part.json"
check_peak uploads

# The stalled upload ends; the whole budget is free again.
touch "$WORK/go"
for p in "${UP[@]}"; do t tail --pid="$p" -f /dev/null; done
check_eq "the stalled upload, once whole, is stored" \
	"$(cat "$WORK"/up*.code | tr -d '\n' | sed 's/503//g')" 200
check_eq "its four values" "$(kvctl "$WORK/root/$NS" list --prefix big | jq length)" 4
api -X PUT -H 'Content-Type: application/json' --data-binary @"$WORK/bulk.json" \
	"$BASE/$NS/bulk" >/dev/null
check_eq "then a 100 MB bulk body (2/3 of the budget) is taken at once" "$(status)" 200
check "kvapi is still running" kill -0 "$KVAPI_PID"
rm -f "$WORK/bulk.json"
stop_kvapi

# --- readers that do not read -------------------------------------------
start_kvapi "$WORK/root2" --memory-max "${BUDGET_MIB}M"
NS=$(new_ns memory2)
HOST=${ADDR%:*}
PORT=${ADDR##*:}
head -c 26214400 /dev/urandom >"$WORK/value"
api -X PUT --data-binary @"$WORK/value" "$BASE/$NS/values/v" >/dev/null
check_eq "a 25 MiB value is stored" "$(status)" 200
GET_PATH="/client/v4/accounts/$ACCOUNT/storage/kv/namespaces/$NS/values/v"
BASE_KIB=$(hwm_kib)

# reader I GO: ask for the value, read the reply's head, wait for file GO,
# then read the body.
reader() {
	local line
	exec 3<>"/dev/tcp/$HOST/$PORT"
	printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$GET_PATH" >&3
	while IFS= read -r -t 60 line <&3; do
		[ "$line" = $'\r' ] && break
		printf '%s\n' "$line"
	done >"$WORK/rhead$1"
	touch "$WORK/rwait$1"
	wait_for "$2"
	t cat <&3 >"$WORK/rbody$1"
	touch "$WORK/rdone$1"
}
RD=()
for i in $(seq "$READERS"); do
	reader "$i" "$WORK/read" &
	RD+=("$!")
	PIDS+=("$!")
done
waiting() { [ "$(ls "$WORK"/rwait* 2>/dev/null | wc -l)" -eq "$READERS" ]; }
check "$READERS GETs of the value are answered while their clients do not read" within 60000 waiting
check_peak GETs
touch "$WORK/read"
for p in "${RD[@]}"; do t tail --pid="$p" -f /dev/null; done
good=0
for i in $(seq "$READERS"); do
	grep -q '^HTTP/1.1 200' "$WORK/rhead$i" && grep -qi '^Content-Length: 26214400' "$WORK/rhead$i" &&
		cmp -s "$WORK/rbody$i" "$WORK/value" && good=$((good + 1))
	rm -f "$WORK/rbody$i"
done
check_eq "then each reads the whole value" "$good" "$READERS"

# A value rewritten while a reader is stalled: its reply is cut short.
reader 0 "$WORK/read0" &
PIDS+=("$!")
R0=$!
check "a reader stalls after the head" within 60000 test -e "$WORK/rwait0"
head -c 26214400 /dev/urandom >"$WORK/value2"
api -X PUT --data-binary @"$WORK/value2" "$BASE/$NS/values/v" >/dev/null
check_eq "the value is rewritten meanwhile" "$(status)" 200
touch "$WORK/read0"
t tail --pid="$R0" -f /dev/null
GOT=$(stat -c %s "$WORK/rbody0")
echo "# the stalled reader got $GOT of 26214400 bytes"
check "it gets fewer bytes than announced" test "$GOT" -lt 26214400
check "and they are the old value's first bytes" cmp -n "$GOT" "$WORK/rbody0" "$WORK/value"
t curl -sS -o "$WORK/got2" "$BASE/$NS/values/v"
check "a new GET reads the new value whole" cmp "$WORK/got2" "$WORK/value2"

# bulk/get: its reply is counted as it is written.  A 25 MiB value of
# control characters is 150 MiB of JSON ("\u0001" a byte): one fits in the
# budget, two do not.
head -c 26214400 /dev/zero | tr '\0' '\1' >"$WORK/ctl"
api -X PUT --data-binary @"$WORK/ctl" "$BASE/$NS/values/c1" >/dev/null
api -X PUT --data-binary @"$WORK/ctl" "$BASE/$NS/values/c2" >/dev/null
rm -f "$WORK/ctl"
api -X POST -H 'Content-Type: application/json' -d '{"keys":["c1","c2"]}' \
	"$BASE/$NS/bulk/get" >/dev/null
check_error "a bulk get of 300 MiB of JSON" 503 10001
t curl -sS -o "$WORK/bulk1" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
	-d '{"keys":["c1"]}' "$BASE/$NS/bulk/get" >"$WORK/status"
check_eq "a bulk get of 150 MiB of JSON" "$(status)" 200
check "is whole" test "$(stat -c %s "$WORK/bulk1")" -gt $((6 * 26214400))
check_eq "and is the envelope around the values" "$(head -c 74 "$WORK/bulk1")" \
	'{"success":true,"errors":[],"messages":[],"result":{"values":{"c1":"\u0001'
check_eq "to its end" "$(tail -c 11 "$WORK/bulk1")" '\u0001"}}}'
rm -f "$WORK/bulk1"
check "kvapi is still running" kill -0 "$KVAPI_PID"
stop_kvapi
finish
