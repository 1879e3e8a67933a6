#!/usr/bin/env bash
# The real wrangler (tests/clients/package.json) against kvapi on loopback:
# every `wrangler kv` command with --remote, pointed at kvapi by
# CLOUDFLARE_API_BASE_URL, with no wrangler.toml.  Values are compared
# byte for byte, and every write is cross-checked through the other
# interfaces of the same store: a wrangler write is read back by kvctl on
# ROOT/<id> and in a kvfs mount of that store, and writes by kvctl and
# through the mount are read back by `wrangler kv key get`.
#
# wrangler takes about a second a call: this test makes about 30.
. "$(dirname "$0")/lib.sh"

ROOT="$WORK/root"
mkdir -p "$ROOT"
start_kvapi "$ROOT"

export CLOUDFLARE_API_BASE_URL="$API_BASE"
export CLOUDFLARE_API_TOKEN="$TOKEN"
export CLOUDFLARE_ACCOUNT_ID="$ACCOUNT"
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false
export WRANGLER_HIDE_BANNER=true WRANGLER_LOG_PATH="$WORK/wrangler-logs"
export NO_COLOR=1 CI=1
cd "$WORK" # no wrangler.toml here or above

# wr OUT ARGS...: `wrangler ARGS` with stdout to $WORK/OUT and stderr to
# $WORK/OUT.err.  Fails with wrangler's status.
wr() {
	local out=$1
	shift
	t "$WRANGLER_BIN" "$@" >"$WORK/$out" 2>"$WORK/$out.err"
}

# wr_ok DESC OUT ARGS...: wrangler must succeed (a check).
wr_ok() {
	local desc=$1 out=$2 status=0
	shift 2
	wr "$out" "$@" || status=$?
	if [ "$status" -eq 0 ]; then
		ok "$desc"
	else
		not_ok "$desc (wrangler exit $status)"
		sed 's/^/#   /' "$WORK/$out" "$WORK/$out.err" | grep -v '^#   *$' | tail -n 15
	fi
	return 0
}

# js FILE EXPR: EXPR evaluated with `d` the JSON in FILE (wrangler's output
# up to its last "]" or "}", so a trailing "Success!" is left out); strings
# printed as they are, anything else as JSON; what cannot be evaluated
# prints a <not found: ...> line, so a check fails without ending the test.
js() {
	t node -e '
		const fs = require("fs");
		const s = fs.readFileSync(process.argv[1], "utf8");
		const end = Math.max(s.lastIndexOf("]"), s.lastIndexOf("}"));
		const d = JSON.parse(s.slice(s.search(/[\[{]/), end + 1));
		const r = eval(process.argv[2]);
		process.stdout.write(typeof r === "string" ? r : JSON.stringify(r));
	' "$1" "$2" 2>"$WORK/js.err" || echo "<not found: $(grep -m1 Error "$WORK/js.err")>"
}

kvc() {
	t "$KVCTL" "$@"
}

NS=(--remote)

# --- namespaces -----------------------------------------------------------
wr_ok "namespace create prints the new namespace's id" ns1 kv namespace create kvfs-clients
ID=$(grep -oE '\b[0-9a-f]{32}\b' "$WORK/ns1" | head -n 1 || true)
check_eq "the new namespace's id is 32 lower-case hex digits" \
	"$(grep -cE '^[0-9a-f]{32}$' <<<"$ID")" "1"
check "the namespace is a store at ROOT/<id>" test -d "$ROOT/${ID:-no-id}"
if [ -z "$ID" ]; then
	echo "Bail out! no namespace id: nothing else can be checked"
	exit 1
fi
wr_ok "a second namespace create" ns2 kv namespace create "second title"
ID2=$(grep -oE '\b[0-9a-f]{32}\b' "$WORK/ns2" | head -n 1 || true)
wr_ok "namespace list" nslist kv namespace list
check_eq "namespace list shows both namespaces with their titles, by title" \
	"$(js "$WORK/nslist" 'd.map(n => n.id + " " + n.title).join("\n")')" \
	"$ID kvfs-clients
$ID2 second title"
NS+=(--namespace-id "$ID")
STORE="$ROOT/$ID"

# A mount of the namespace's store, before the writes: what wrangler
# writes through kvapi must show in it as any other writer's writes.
MNT="$WORK/mnt"
mount_kvfs "$STORE" "$MNT"

# --- single keys ----------------------------------------------------------
# A binary value: every byte value (NUL, invalid UTF-8), then 1 MiB of
# random bytes, so the body is not one small buffer.
{ t node -e 'process.stdout.write(Buffer.from([...Array(256).keys()]))'
  head -c 1048576 /dev/urandom; } >"$WORK/bin.dat"
check_eq "the binary file has 1 MiB + 256 bytes" "$(stat -c %s "$WORK/bin.dat")" "1048832"
head -c 70000 /dev/urandom >"$WORK/binmeta.dat"
SPECIAL='dir/a b%?#&+=é'

wr_ok "key put VALUE" put1 kv key put "cfg:greeting" "hello, world" "${NS[@]}"
wr_ok "key put --path (binary)" put2 kv key put bin --path "$WORK/bin.dat" "${NS[@]}"
before=$(date +%s)
wr_ok "key put --ttl 3600" put3 kv key put withttl "short-lived" --ttl 3600 "${NS[@]}"
after=$(date +%s)
wr_ok "key put --metadata" put4 kv key put withmeta "has metadata" \
	--metadata '{"flag":true,"n":42,"s":"x y"}' "${NS[@]}"
wr_ok "key put --path --metadata (binary value in a multipart body)" put5 \
	kv key put binmeta --path "$WORK/binmeta.dat" --metadata '{"kind":"blob"}' "${NS[@]}"
wr_ok "key put of a key with / % ? # & + = space and UTF-8" put6 \
	kv key put "$SPECIAL" "special value" "${NS[@]}"

wr_ok "key get of a text value" get1 kv key get "cfg:greeting" "${NS[@]}"
printf 'hello, world' >"$WORK/want1"
check_file "key get prints the text value exactly" "$WORK/get1" "$WORK/want1"
wr_ok "key get of the binary value" get2 kv key get bin "${NS[@]}"
check_file "key get prints the binary value byte for byte" "$WORK/get2" "$WORK/bin.dat"
wr_ok "key get of the multipart binary value" get5 kv key get binmeta "${NS[@]}"
check_file "the value put with --path --metadata reads back byte for byte" \
	"$WORK/get5" "$WORK/binmeta.dat"
wr_ok "key get of the key with special characters" get6 kv key get "$SPECIAL" "${NS[@]}"
check_eq "it reads back its value" "$(cat "$WORK/get6")" "special value"

wr_ok "key list" list1 kv key list "${NS[@]}"
check_eq "key list shows every key once, in key order" \
	"$(js "$WORK/list1" 'd.map(k => k.name).join("\n")')" \
	"bin
binmeta
cfg:greeting
$SPECIAL
withmeta
withttl"
check_eq "key list shows the metadata put with --metadata" \
	"$(js "$WORK/list1" 'JSON.stringify(d.find(k => k.name === "withmeta").metadata)')" \
	'{"flag":true,"n":42,"s":"x y"}'
exp=$(js "$WORK/list1" 'String(d.find(k => k.name === "withttl").expiration)')
if [ "$exp" -ge $((before + 3600)) ] 2>/dev/null && [ "$exp" -le $((after + 3600 + 1)) ]; then
	ok "key list shows the expiration of --ttl 3600 as now + 3600"
else
	not_ok "key list shows the expiration of --ttl 3600 as now + 3600 (got $exp, put between $before and $after)"
fi
check_eq "a key put without --ttl or --metadata lists neither" \
	"$(js "$WORK/list1" 'JSON.stringify(d.find(k => k.name === "cfg:greeting"))')" \
	'{"name":"cfg:greeting"}'
wr_ok "key list --prefix" list2 kv key list --prefix "dir/" "${NS[@]}"
check_eq "key list --prefix shows only the keys under the prefix" \
	"$(js "$WORK/list2" 'd.map(k => k.name).join("\n")')" "$SPECIAL"

# --- wrangler's writes, seen by kvctl and the mount ------------------------
kvc "$STORE" get bin >"$WORK/kvctl-bin" 2>"$WORK/kvctl.err" || true
check_file "kvctl get on ROOT/<id> reads wrangler's binary value byte for byte" \
	"$WORK/kvctl-bin" "$WORK/bin.dat"
check_eq "kvctl get reads the key with special characters exactly" \
	"$(kvc "$STORE" get "$SPECIAL" 2>&1)" "special value"
check_eq "kvctl get --metadata reads wrangler's metadata" \
	"$(kvc "$STORE" get withmeta --metadata 2>&1 | tr -d ' \n')" \
	'{"value":"hasmetadata","metadata":{"flag":true,"n":42,"s":"xy"}}'
check "the mount shows wrangler's key cfg:greeting as cfg/greeting" \
	within 10000 test -f "$MNT/cfg/greeting"
check_file "the mount reads wrangler's text value exactly" "$MNT/cfg/greeting" "$WORK/want1"
check_file "the mount reads wrangler's binary value byte for byte" "$MNT/bin" "$WORK/bin.dat"

# --- writes by kvctl and through the mount, seen by wrangler --------------
head -c 200000 /dev/urandom >"$WORK/kvctl.dat"
check "kvctl put --path of a binary value" kvc "$STORE" put fromkvctl --path "$WORK/kvctl.dat"
wr_ok "key get of kvctl's value" get7 kv key get fromkvctl "${NS[@]}"
check_file "wrangler reads kvctl's binary value byte for byte" "$WORK/get7" "$WORK/kvctl.dat"
printf 'written in the mount\n' >"$WORK/want8"
check "a file written in the mount" t cp "$WORK/want8" "$MNT/cfg/frommount"
wr_ok "key get of the file written in the mount" get8 kv key get "cfg:frommount" "${NS[@]}"
check_file "wrangler reads the mount's file as key cfg:frommount" "$WORK/get8" "$WORK/want8"

# --- delete ----------------------------------------------------------------
wr_ok "key delete" del1 kv key delete "cfg:greeting" "${NS[@]}"
check "kvctl no longer finds the deleted key" \
	sh -c '! "$0" "$1" get cfg:greeting 2>/dev/null' "$KVCTL" "$STORE"
check "the deleted key leaves the mount" within 10000 test ! -e "$MNT/cfg/greeting"
status=0
wr get9 kv key get "cfg:greeting" "${NS[@]}" || status=$?
if [ "$status" -ne 0 ] && grep -q ' 404' "$WORK/get9.err"; then
	ok "key get of the deleted key fails with a 404"
else
	not_ok "key get of the deleted key fails with a 404 (exit $status; said: $(head -c 300 "$WORK/get9.err"))"
fi

# --- bulk -------------------------------------------------------------------
# Text, base64 (a binary value), metadata and ttl entries; the base64 value
# is the binary file's first 300 bytes.
b64=$(head -c 300 "$WORK/bin.dat" | base64 -w0)
head -c 300 "$WORK/bin.dat" >"$WORK/want-b64"
cat >"$WORK/bulk.json" <<EOF
[
  {"key": "bulk:text", "value": "plain text ✓"},
  {"key": "bulk:binary", "value": "$b64", "base64": true},
  {"key": "bulk:meta", "value": "with metadata", "metadata": {"owner": "ops", "v": [1, 2]}},
  {"key": "bulk:ttl", "value": "expires", "expiration_ttl": 7200},
  {"key": "bulk:b64text", "value": "$(printf 'decoded text' | base64 -w0)", "base64": true}
]
EOF
before=$(date +%s)
wr_ok "bulk put of text, base64, metadata and ttl entries" bput kv bulk put "$WORK/bulk.json" "${NS[@]}"
after=$(date +%s)
kvc "$STORE" get bulk:binary >"$WORK/kvctl-b64" 2>/dev/null || true
check_file "kvctl reads the base64 entry decoded, byte for byte" "$WORK/kvctl-b64" "$WORK/want-b64"
check_eq "kvctl reads the text entry exactly" "$(kvc "$STORE" get bulk:text 2>&1)" "plain text ✓"
check_eq "kvctl reads the metadata entry's metadata" \
	"$(kvc "$STORE" get bulk:meta --metadata 2>&1 | tr -d ' \n')" \
	'{"value":"withmetadata","metadata":{"owner":"ops","v":[1,2]}}'
check_file "the mount reads the base64 entry decoded" "$MNT/bulk/binary" "$WORK/want-b64"
wr_ok "key get of the base64 entry" get10 kv key get bulk:binary "${NS[@]}"
check_file "wrangler reads the base64 entry decoded, byte for byte" "$WORK/get10" "$WORK/want-b64"

wr_ok "key list --prefix bulk:" list3 kv key list --prefix "bulk:" "${NS[@]}"
check_eq "the bulk entries list in key order with their metadata" \
	"$(js "$WORK/list3" 'd.map(k => k.name + " " + JSON.stringify(k.metadata ?? null)).join("\n")')" \
	'bulk:b64text null
bulk:binary null
bulk:meta {"owner":"ops","v":[1,2]}
bulk:text null
bulk:ttl null'
exp=$(js "$WORK/list3" 'String(d.find(k => k.name === "bulk:ttl").expiration)')
if [ "$exp" -ge $((before + 7200)) ] 2>/dev/null && [ "$exp" -le $((after + 7200 + 1)) ]; then
	ok "the bulk entry's expiration_ttl 7200 lists as now + 7200"
else
	not_ok "the bulk entry's expiration_ttl 7200 lists as now + 7200 (got $exp, put between $before and $after)"
fi

printf '["bulk:text", {"name": "bulk:meta"}, "bulk:b64text", "no such key"]\n' >"$WORK/bget.json"
wr_ok "bulk get (strings and {name} objects)" bget kv bulk get "$WORK/bget.json" "${NS[@]}"
check_eq "bulk get prints each value, and null for a missing key" \
	"$(js "$WORK/bget" 'JSON.stringify(d)')" \
	'{"bulk:text":"plain text ✓","bulk:meta":"with metadata","bulk:b64text":"decoded text","no such key":null}'
# kvctl's bulk get of the same file prints what wrangler printed (the
# JSON; wrangler's banner lines above it are not kvctl's to print).
kvc "$STORE" bulk get "$WORK/bget.json" >"$WORK/bget-kvctl" 2>/dev/null || true
sed -n '/^{/,/^}/p' "$WORK/bget" >"$WORK/bget-wrangler"
check_file "kvctl bulk get prints what wrangler's bulk get prints" "$WORK/bget-kvctl" "$WORK/bget-wrangler"

printf '["bulk:text", {"name": "bulk:binary"}, "bulk:ttl", "never existed"]\n' >"$WORK/bdel.json"
wr_ok "bulk delete --force" bdel kv bulk delete --force "$WORK/bdel.json" "${NS[@]}"
check_eq "kvctl lists only the bulk keys that were not deleted" \
	"$(kvc "$STORE" list --prefix bulk: 2>&1 | sed -n 's/^ *"name": "\(.*\)",\{0,1\}$/\1/p')" \
	"bulk:b64text
bulk:meta"
check "the deleted bulk key leaves the mount" within 10000 test ! -e "$MNT/bulk/binary"

# --- auth -----------------------------------------------------------------
status=0
CLOUDFLARE_API_TOKEN="not-$TOKEN" wr badtok kv key list "${NS[@]}" || status=$?
if [ "$status" -ne 0 ] && ! grep -q '"name"' "$WORK/badtok"; then
	ok "a wrong token is refused (wrangler fails and lists nothing)"
else
	not_ok "a wrong token is refused (exit $status; printed: $(head -c 200 "$WORK/badtok"))"
fi

check "kvctl check finds the store sound after the clients' writes" kvc "$STORE" check
finish
