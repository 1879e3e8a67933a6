#!/usr/bin/env bash
# The official `cloudflare` SDK against kvapi on loopback: sdk.mjs makes
# every Workers KV call (namespaces, values binary and text with metadata
# and ttl, metadata, keys listed by cursor over 2,500 keys, the bulk
# calls, the 404 and 400 errors) and checks each result; this script
# starts kvapi, runs it, and checks the store it wrote through kvctl.
. "$(dirname "$0")/lib.sh"

ROOT="$WORK/root"
mkdir -p "$ROOT"
start_kvapi "$ROOT"

status=0
KVAPI_BASE="$API_BASE" KVAPI_TOKEN="$TOKEN" KVAPI_ACCOUNT="$ACCOUNT" ROOT_DIR="$ROOT" \
	T_SECONDS=300 t node "$CLIENTS_DIR/sdk.mjs" >"$WORK/sdk.out" 2>&1 || status=$?
# sdk.mjs prints its own TAP lines: shown as comments, one check here.
sed 's/^/# /' "$WORK/sdk.out"
if [ "$status" -eq 0 ] && grep -q '^1\.\.' "$WORK/sdk.out"; then
	ok "the cloudflare SDK: $(grep -c '^ok ' "$WORK/sdk.out") checks passed"
else
	not_ok "the cloudflare SDK (exit $status): $(grep -m1 '^not ok' "$WORK/sdk.out" || tail -n 1 "$WORK/sdk.out")"
	echo "Bail out! the SDK did not finish: what it left is not checked"
	exit 1
fi

# The namespace the SDK made first is an ordinary store: kvctl reads what
# the SDK left in it and finds it sound.
store="$ROOT/$(sed -n 's/^# namespace \([0-9a-f]\{32\}\)$/\1/p' "$WORK/sdk.out")"
check "kvctl check finds the SDK's store sound" t "$KVCTL" "$store" check
check_eq "kvctl get reads the SDK's replaced value" "$(t "$KVCTL" "$store" get 'bin/ary key?' 2>&1 | head -c 100)" "replaced"
finish
