#!/usr/bin/env bash
# test_hostile: clients that misbehave do not crash kvapi, do not make it
# hold memory past a route's limit, and do not keep others from being
# served: slowloris connections, oversized bodies (announced and
# chunked), garbage request lines, pipelining, hundreds of concurrent
# requests, one address holding connections open (--per-address-max: the
# one past the limit is closed unanswered while another address is
# served).
. "$(dirname "$0")/lib.sh"

# All 100 concurrent clients below come from one address: room for them.
start_kvapi "$WORK/root" --per-address-max 256
NS=$(new_ns hostile)
V="$BASE/$NS/values"
HOST=${ADDR%:*}
PORT=${ADDR##*:}
alive() { t curl -sS -o /dev/null -w '%{http_code}' "$BASE/$NS/keys" | grep -q 200; }

# Slowloris: 60 connections that send half a request and wait.
SLOW=()
for i in $(seq 60); do
	( exec 3<>"/dev/tcp/$HOST/$PORT"; printf 'GET /client/v4/accounts/a/storage/kv/namespaces HTTP/1.1\r\nHost: x\r\n' >&3; sleep 30 ) &
	SLOW+=("$!")
	PIDS+=("$!")
done
sleep 0.5
check "served while 60 slowloris connections hang" alive
for p in "${SLOW[@]}"; do kill "$p" 2>/dev/null || true; done

# An oversized value announced by Content-Length: refused before the body.
head -c 27000000 /dev/zero >"$WORK/big"
api -X PUT --data-binary @"$WORK/big" "$V/big" >/dev/null
check_error "a 27 MB value" 413 10024
check_json "with Workers KV's message" '.errors[0].message == "Value length of 27000000 exceeds limit of 26214400."'
# The same, chunked: refused once it passes the limit.
api -X PUT -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/big" "$V/big" >/dev/null
check_error "a 27 MB chunked value" 413 10024
check "nothing was stored" sh -c "! '$KVCTL' '$WORK/root/$NS' get big 2>/dev/null"
# A value of exactly the limit is taken.
head -c 26214400 /dev/urandom >"$WORK/max"
api -X PUT --data-binary @"$WORK/max" "$V/max" >/dev/null
check_eq "a value of exactly 25 MiB" "$(status)" 200
t curl -sS -o "$WORK/got" "$V/max"
check "and it reads back exactly" cmp "$WORK/max" "$WORK/got"
rm -f "$WORK/big" "$WORK/got"
# A chunked body that never ends is cut off, not buffered.
t sh -c "head -c 120000000 /dev/zero | curl -sS -o /dev/null -X PUT -H 'Transfer-Encoding: chunked' --data-binary @- '$V/endless'" 2>/dev/null || true
check "served after a 120 MB chunked body" alive
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$(pgrep -P "$KVAPI_PID" -x kvapi)/status")
echo "# kvapi VmHWM ${HWM} kB"
# An oversized namespace body and an oversized bulk body.
head -c 70000 /dev/zero | tr '\0' a >"$WORK/title"
api -X POST --data-binary @"$WORK/title" "$BASE" >/dev/null
check_error "a 70 kB namespace body" 413 10024

# Garbage request lines and headers.
for g in 'GARBAGE\r\n\r\n' 'GET\r\n\r\n' 'GET / HTTP/9.9\r\n\r\n' 'PUT /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n' \
	'PUT /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n'; do
	( exec 3<>"/dev/tcp/$HOST/$PORT"; printf "$g" >&3; timeout 5 cat <&3 >/dev/null ) || true
done
check "served after garbage requests" alive

# Pipelining: two requests in one write, two replies in order.
printf 'v1' | api -X PUT --data-binary @- "$V/p1" >/dev/null
R="GET /client/v4/accounts/a/storage/kv/namespaces/$NS/values/p1 HTTP/1.1\r\nHost: x\r\n\r\n"
RESP=$( exec 3<>"/dev/tcp/$HOST/$PORT"; printf "$R$R" >&3; timeout 5 cat <&3 || true )
check_eq "pipelined requests get two replies" "$(grep -c 'HTTP/1.1 200' <<<"$RESP")" 2

# Hundreds of concurrent writers and readers.
seq 300 | t xargs -P 100 -I{} curl -sS -o /dev/null -X PUT --data-binary 'v{}' "$V/c{}"
check_eq "300 concurrent PUTs all stored" "$(kvctl "$WORK/root/$NS" list --prefix c | jq length)" 300
seq 300 | t xargs -P 100 -I{} curl -sS -o "$WORK/r{}" "$V/c{}"
bad=0
for i in $(seq 300); do [ "$(cat "$WORK/r$i")" = "v$i" ] || bad=$((bad + 1)); done
check_eq "300 concurrent GETs read their values" "$bad" 0
check "kvctl check: the store is sound" kvctl "$WORK/root/$NS" check
check "kvapi is still running" kill -0 "$KVAPI_PID"

# One address cannot hold every connection.  A kvapi with the default
# --per-address-max (64) in a network namespace; 64 connections from its
# 127.0.0.1 that send half a request and wait, each connected before the
# next starts (connections are accepted in the order they were made); a
# 65th from the same address is closed unanswered, while a client from
# another address (the other end of a veth pair) is served, and the first
# address is served again once its connections are gone.
printf 'hostile-token\n' >"$WORK/token"
netns_pair hostile 10.78.0.1/24 10.78.0.2/24
bg limit ip netns exec "$NS_A" "$KVAPI" --listen 0.0.0.0:8787 --token-file "$WORK/token" \
	"$WORK/root"
check "kvapi with the default limit is serving" within 10000 grep -q 'serving.* 64 from one address' \
	"$WORK/limit.log"
PATH_NS="/client/v4/accounts/$ACCOUNT/storage/kv/namespaces"
AUTH='Authorization: Bearer hostile-token'
HANG=()
for i in $(seq 64); do
	timeout 90 ip netns exec "$NS_A" bash -c "exec 3<>/dev/tcp/127.0.0.1/8787 && touch '$WORK/hang$i' &&
		printf 'GET $PATH_NS HTTP/1.1\r\nHost: x\r\n' >&3 && exec sleep 60" &
	HANG+=("$!")
	PIDS+=("$!")
	within 10000 test -e "$WORK/hang$i" || not_ok "hanging connection $i was not made"
done
# in_ns NS URL: curl from network namespace NS with the token.
in_ns() {
	t ip netns exec "$1" curl -sS -o "$WORK/body" -w '%{http_code}' -H "$AUTH" "$2" \
		>"$WORK/status" 2>"$WORK/curl.err" || true
}
in_ns "$NS_A" "http://127.0.0.1:8787$PATH_NS"
check_eq "a 65th connection from the same address gets no reply" "$(status)" 000
in_ns "$NS_B" "http://10.78.0.1:8787$PATH_NS"
check_eq "a client from another address is served meanwhile" "$(status)" 200
check_json "with the namespaces" '.success == true'
for p in "${HANG[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${HANG[@]}"; do wait "$p" 2>/dev/null || true; done
served_again() {
	in_ns "$NS_A" "http://127.0.0.1:8787$PATH_NS"
	[ "$(status)" = 200 ]
}
check "the first address is served once its connections are closed" within 10000 served_again
check "kvapi is still running" kill -0 "$BG_PID"
finish
