#!/usr/bin/env bash
# test_auth: with --token-file a request needs "Authorization: Bearer
# TOKEN"; without it only loopback clients are served, and a client from
# another address (a network namespace joined by a veth pair) is refused
# with a 403 envelope.
. "$(dirname "$0")/lib.sh"

printf 's3cret-token\n' >"$WORK/token"
# A delete a stop interrupted: its directory goes at the next start.
mkdir -p "$WORK/root/.deleted-0123456789abcdef0123456789abcdef"
touch "$WORK/root/.deleted-0123456789abcdef0123456789abcdef/data.mdb"
start_kvapi "$WORK/root" --token-file "$WORK/token"
check "an interrupted delete is finished at start" test ! -e "$WORK/root/.deleted-0123456789abcdef0123456789abcdef"
api "$BASE" >/dev/null
check_error "no Authorization header" 403 10000
api -H 'Authorization: Bearer wrong' "$BASE" >/dev/null
check_error "a wrong token" 403 10000
api -H 'Authorization: Bearer s3cret-token-longer' "$BASE" >/dev/null
check_error "a token with the right prefix" 403 10000
api -H 'Authorization: Bearer s3cret-token' "$BASE" >/dev/null
check_json "the right token" '.success == true and .result == []'
# Signalled directly (not through its timeout wrapper) to see its status.
pkid=$(pgrep -P "$KVAPI_PID" -x kvapi)
kill -TERM "$pkid"
st=0
wait "$KVAPI_PID" || st=$?
check_eq "SIGTERM stops it cleanly (exit 0)" "$st" 0
check "and it said so" grep -q 'kvapi: stopped' "$WORK/kvapi.log"

printf '\n' >"$WORK/empty"
st=0
t "$KVAPI" --token-file "$WORK/empty" "$WORK/root" 2>"$WORK/err" || st=$?
check_eq "an empty token file is refused (exit 1)" "$st" 1
check "with a message" grep -q 'no token on its first line' "$WORK/err"
check_eq "a usage error exits 2" "$(t "$KVAPI" 2>/dev/null; echo $?)" 2
check_eq "--listen without a port exits 2" "$(t "$KVAPI" --listen 127.0.0.1 "$WORK/root" 2>/dev/null; echo $?)" 2
for n in 0 257 x 1.5; do
	check_eq "--per-address-max $n exits 2" \
		"$(t "$KVAPI" --per-address-max "$n" "$WORK/root" 2>/dev/null; echo $?)" 2
done
check "-h" sh -c "'$KVAPI' -h | grep -q 'Usage: kvapi'"
check "--version" sh -c "'$KVAPI' --version | grep -q '^kvapi '"

# Loopback only, seen from another address.
netns_pair kvapi 10.77.0.1/24 10.77.0.2/24
bg open ip netns exec "$NS_A" "$KVAPI" --listen 0.0.0.0:8787 "$WORK/root"
within 10000 grep -q serving "$WORK/open.log" || true
URL="http://10.77.0.1:8787/client/v4/accounts/$ACCOUNT/storage/kv/namespaces"
sleep 0.1
t ip netns exec "$NS_B" curl -sS --retry 20 --retry-connrefused --retry-delay 0 -o "$WORK/body" -w '%{http_code}' "$URL" >"$WORK/status" || true
check_error "a client from another address, no token" 403 10000
check_json "the refusal says why" '.errors[0].message | test("loopback")'
t ip netns exec "$NS_A" curl -sS -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:8787/client/v4/accounts/x/storage/kv/namespaces" >"$WORK/status"
check_json "a loopback client is served" '.success == true'
finish
