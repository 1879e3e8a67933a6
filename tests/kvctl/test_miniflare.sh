#!/usr/bin/env bash
# test_miniflare: kvctl import --from-miniflare and export --to-miniflare
# against the state the real wrangler (tests/clients, `--local
# --persist-to DIR`) writes and reads:
#  - keys wrangler put (text, binary with --path, --metadata, --ttl, a
#    non-ASCII key) import exactly: values byte for byte, metadata, the
#    expiration within the ttl; another namespace of the state is not
#    imported; an expired entry is skipped and counted;
#  - a store exported to a new state reads back through `wrangler kv key
#    get/list --local` byte-exact with metadata and expiration, and
#    wrangler can write to it;
#  - exported into an existing state, the namespace's rows are replaced,
#    its old blobs removed, and the other namespace is untouched;
#  - wrangler -> kvctl -> wrangler gives wrangler the same listing and
#    bytes;
#  - bad inputs (missing DIR, unknown or invalid namespace id, a corrupt
#    database, a missing blob, a key kvcore refuses, an entry expiring
#    sooner than the min ttl) fail with a clear message and exit 1, and
#    leave the store (or the state) as it was.
# The clients must install: if they cannot, the test fails.
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
if ! nodebin=$(T_SECONDS=900 t "$root/scripts/install-clients.sh"); then
	not_ok "the Cloudflare clients install (scripts/install-clients.sh)"
	finish
	exit 1
fi
export PATH="$nodebin:$PATH"
WRANGLER=$root/tests/clients/node_modules/.bin/wrangler
export WRANGLER_SEND_METRICS=false CI=1 HOME="$WORK/home"
mkdir -p "$WORK/home" "$WORK/proj"

# wr STATE NS ARGS...: `wrangler kv key ARGS` on namespace NS of STATE.
wr() {
	local state=$1 ns=$2
	shift 2
	(cd "$WORK/proj" &&
		t "$WRANGLER" kv key "$@" --local --persist-to "$state" --namespace-id "$ns")
}

# same_json DESC A B: files A and B hold equal JSON.
same_json() {
	if t node -e 'const fs = require("fs"), assert = require("assert");
		assert.deepStrictEqual(JSON.parse(fs.readFileSync(process.argv[1])),
			JSON.parse(fs.readFileSync(process.argv[2])));' "$2" "$3" 2>"$WORK/json.err"; then
		ok "$1"
	else
		not_ok "$1"
		head -c 1500 "$WORK/json.err" | sed 's/^/#   /'
	fi
}

# check_fails DESC TEXT CMD...: CMD exits 1 and says TEXT on stderr.
check_fails() {
	local desc=$1 want=$2 status=0
	shift 2
	t "$@" >/dev/null 2>"$WORK/stderr" || status=$?
	if [ "$status" != 1 ]; then
		not_ok "$desc (exit $status; said: $(head -c 300 "$WORK/stderr"))"
	elif ! grep -qF -- "$want" "$WORK/stderr"; then
		not_ok "$desc (said: $(head -c 400 "$WORK/stderr"))"
		printf '#   want: %s\n' "$want"
	else
		ok "$desc"
	fi
}

# db STATE NS: the namespace's database file, its name derived here with
# node's crypto (as Miniflare derives it), independently of kvctl.
db() {
	local id
	id=$(t node -e 'const c = require("crypto");
		const k = c.createHash("sha256").update("miniflare-KVNamespaceObject").digest();
		const a = c.createHmac("sha256", k).update(process.argv[1]).digest().subarray(0, 16);
		const b = c.createHmac("sha256", k).update(a).digest().subarray(0, 16);
		console.log(Buffer.concat([a, b]).toString("hex"));' "$2")
	echo "$1/v3/kv/miniflare-KVNamespaceObject/$id.sqlite"
}

# state_copy STATE NAME [SQL]: prints the path of $WORK/NAME, a copy of
# the Miniflare state STATE with SQL run on namespace $NS's database.
# (A command substitution runs without errexit: each step says it failed.)
state_copy() {
	cp -r "$1" "$WORK/$2" || return
	if [ -n "${3:-}" ]; then t sqlite3 "$(db "$WORK/$2" "$NS")" "$3" || return; fi
	echo "$WORK/$2"
}

NS=0f2ac74b498b48028cb68387c421e279
OTHER=other-namespace
{ printf 'bin\000\377\001'; head -c 100000 /dev/urandom; } >"$WORK/bin"

# ------------------------------------------------- wrangler -> kvctl
S1=$WORK/state1
t0=$(date +%s)
wr "$S1" "$NS" put plain "hello world" >/dev/null
wr "$S1" "$NS" put bin --path "$WORK/bin" >/dev/null
wr "$S1" "$NS" put meta v --metadata '{"n": 1, "s": "x", "arr": [1, 2.5]}' >/dev/null
wr "$S1" "$NS" put ttl v --ttl 3600 >/dev/null
wr "$S1" "$NS" put 'ключ 🙂' 'значение' >/dev/null
wr "$S1" "$OTHER" put elsewhere v >/dev/null
t1=$(date +%s)
check "wrangler wrote the namespace's database where Miniflare's layout says" \
	test -s "$(db "$S1" "$NS")"

A=$WORK/a
cp -r "$S1" "$WORK/state1.orig"
kv "$A" import --from-miniflare "$S1" --namespace "$NS" 2>"$WORK/import.err"
check_eq "import reports the keys it wrote" "$(tail -n 1 "$WORK/import.err")" \
	"Success! Imported 5 keys from namespace '$NS'"
check "import writes no progress line on a pipe" bash -c "! grep -q \$'\\r' '$WORK/import.err'"
# (SQLite's shared-memory index, *-shm, is written by every reader.)
check "import leaves the state's files as they were" diff -r -x '*-shm' "$WORK/state1.orig" "$S1"
check_eq "a text value imports exactly" "$(kv "$A" get plain)" "hello world"
kv "$A" get bin >"$WORK/bin.got"
check "a binary value put with --path imports byte for byte" cmp "$WORK/bin" "$WORK/bin.got"
check_eq "metadata imports as its compact JSON" "$(kv "$A" get meta --metadata)" \
	'{"value":"v","metadata":{"n":1,"s":"x","arr":[1,2.5]}}'
check_eq "a non-ASCII key and value import" "$(kv "$A" get 'ключ 🙂')" 'значение'
exp=$(kv "$A" list --prefix ttl | sed -n 's/.*"expiration": \([0-9]*\).*/\1/p')
check "the expiration of --ttl 3600 imports within the ttl ($exp)" \
	test "$exp" -ge $((t0 + 3600)) -a "$exp" -le $((t1 + 3600))
check_eq "keys of another namespace are not imported" \
	"$(kv "$A" list | names | tr '\n' ' ')" "bin meta plain ttl ключ 🙂 "

# An entry already expired: skipped and counted, the rest imported.
S2=$(state_copy "$S1" state2 \
	"UPDATE _mf_entries SET expiration = 1000 * ($(date +%s) - 5) WHERE key = 'plain'")
B=$WORK/b
kv "$B" import --from-miniflare "$S2" --namespace "$NS" 2>"$WORK/import.err"
check_eq "an expired entry is skipped and counted" "$(tail -n 1 "$WORK/import.err")" \
	"Success! Imported 4 keys from namespace '$NS' (1 expired entry skipped)"
check "the expired entry is not in the store" bash -c "! '$KVCTL' '$B' get plain 2>/dev/null"

# ------------------------------------------------- kvctl -> wrangler
E=$WORK/e
future=$((t1 + 86400))
kv "$E" put text "some text"
kv "$E" put bin --path "$WORK/bin"
kv "$E" put meta:exp v --metadata '{"lang":"ru","n":[1,2.5]}' --expiration "$future"
kv "$E" put 'dir/ключ 日本' 'значение'
kv "$E" put empty ""
S3=$WORK/state3
kv "$E" export --to-miniflare "$S3" --namespace "$NS" 2>"$WORK/export.err"
check_eq "export reports the keys it wrote" "$(tail -n 1 "$WORK/export.err")" \
	"Success! Exported 5 keys to namespace '$NS' of '$S3'"
wr "$S3" "$NS" list >"$WORK/w.list"
kv "$E" list >"$WORK/k.list"
same_json "wrangler lists the exported keys with their metadata and expiration" \
	"$WORK/w.list" "$WORK/k.list"
check "the listing has the expiration" grep -q "\"expiration\": $future" "$WORK/w.list"
wr "$S3" "$NS" get bin >"$WORK/bin.w" 2>/dev/null
check "wrangler reads an exported binary value byte for byte" cmp "$WORK/bin" "$WORK/bin.w"
check_eq "wrangler reads an exported text value under a non-ASCII key" \
	"$(wr "$S3" "$NS" get 'dir/ключ 日本' 2>/dev/null)" 'значение'
wr "$S3" "$NS" put added "by wrangler" >/dev/null
kv "$WORK/e2" import --from-miniflare "$S3" --namespace "$NS" 2>/dev/null
check_eq "wrangler writes to an exported state, and import reads it back" \
	"$(kv "$WORK/e2" get added)" "by wrangler"

# Into an existing state: the namespace is replaced, the other one kept.
kv "$E" export --to-miniflare "$S1" --namespace "$NS" 2>/dev/null
wr "$S1" "$NS" list >"$WORK/w.list"
same_json "export replaces the namespace's keys in an existing state" "$WORK/w.list" "$WORK/k.list"
check_eq "the replaced namespace keeps one blob a key" \
	"$(find "$S1/v3/kv/$NS/blobs" -type f | wc -l)" 5
check_eq "the other namespace of the state is untouched" \
	"$(wr "$S1" "$OTHER" get elsewhere 2>/dev/null)" "v"

# wrangler -> kvctl -> wrangler: the same listing and bytes.
S4=$WORK/state4
kv "$A" export --to-miniflare "$S4" --namespace "$NS" 2>/dev/null
wr "$S4" "$NS" list >"$WORK/w4.list"
wr "$WORK/state1.orig" "$NS" list >"$WORK/w1.list"
same_json "a round trip through kvctl gives wrangler the same listing" "$WORK/w1.list" "$WORK/w4.list"
wr "$S4" "$NS" get bin >"$WORK/bin.w4" 2>/dev/null
check "a round trip through kvctl keeps a binary value byte for byte" cmp "$WORK/bin" "$WORK/bin.w4"

# ------------------------------------------------- bad inputs
F=$WORK/f
kv "$F" put keep v
state "$F" >"$WORK/f.before"
orig=$WORK/state1.orig

# import_refused DESC TEXT DIR [NS]: importing namespace NS (default $NS)
# of the Miniflare state DIR into F fails with exit 1 and says TEXT.
import_refused() {
	check_fails "$1" "$2" "$KVCTL" "$F" import --from-miniflare "$3" --namespace "${4:-$NS}"
}

import_refused "a missing DIR is refused" \
	"kvctl: cannot read Miniflare state '$WORK/nope': No such file or directory" "$WORK/nope"
import_refused "a DIR without KV state is refused" "kvctl: '$WORK/home' holds no Miniflare KV state" \
	"$WORK/home"
import_refused "an unknown namespace is refused, naming those there" \
	"kvctl: no namespace 'deadbeef' in Miniflare state '$orig' (no $(db "$orig" deadbeef)); namespaces there: " \
	"$orig" deadbeef
import_refused "a namespace id that is not a file name is refused" \
	"kvctl: invalid namespace id '../x'" "$orig" ../x
check_refused "import without --namespace is a usage error" 2 \
	"kvctl: usage: kvctl STORE import --from-miniflare DIR --namespace ID" \
	"$KVCTL" "$F" import --from-miniflare "$orig"
check_refused "export --namespace without --to-miniflare is a usage error" 2 \
	"kvctl: usage: kvctl STORE export [--prefix P] [--to-miniflare DIR --namespace ID]" \
	"$KVCTL" "$F" export --namespace "$NS"

S5=$(state_copy "$orig" state5)
dbf=$(db "$S5" "$NS")
rm -f "$dbf-wal" "$dbf-shm"
head -c 8192 /dev/urandom >"$dbf"
import_refused "a corrupt database is refused" \
	"kvctl: not a Miniflare KV database: '$dbf': file is not a database" "$S5"
check_fails "export into a corrupt database is refused" \
	"kvctl: not a Miniflare KV database: '$dbf': file is not a database" \
	"$KVCTL" "$E" export --to-miniflare "$S5" --namespace "$NS"
check_eq "a refused export leaves no blob behind" "$(find "$S5/v3/kv/$NS/blobs" -type f | wc -l)" 5

S6=$(state_copy "$orig" state6)
blob=$(t sqlite3 "$(db "$S6" "$NS")" "SELECT blob_id FROM _mf_entries WHERE key = 'ttl'")
rm "$S6/v3/kv/$NS/blobs/$blob"
import_refused "a missing blob is refused, naming its key and file" \
	"kvctl: key 'ttl' of namespace '$NS': its value's file $S6/v3/kv/$NS/blobs/$blob is missing" "$S6"

truncate -s 0 "$S6/v3/kv/$NS/blobs/$blob"
truncate -s $((25 * 1024 * 1024 + 1)) "$S6/v3/kv/$NS/blobs/$blob"
import_refused "a value over 25 MiB is refused with Workers KV's message" \
	"kvctl: key 'ttl' of namespace '$NS': Value length of 26214401 exceeds limit of 26214400." "$S6"

S7=$(state_copy "$orig" state7 "UPDATE _mf_entries SET key = '..' WHERE key = 'plain'")
import_refused "a key kvcore refuses is named, and nothing is imported" \
	"kvctl: key '..' of namespace '$NS': " "$S7"

S8=$(state_copy "$orig" state8 \
	"UPDATE _mf_entries SET expiration = 1000 * ($(date +%s) + 30) WHERE key = 'plain'")
import_refused "an entry expiring within the min ttl is refused with the way to import it" \
	'`kvctl --min-ttl 1` imports it)' "$S8"
state "$F" >"$WORK/f.after"
check "refused imports left the store as it was" cmp "$WORK/f.before" "$WORK/f.after"
kv --min-ttl 1 "$WORK/g" import --from-miniflare "$S8" --namespace "$NS" 2>/dev/null
check_eq "with --min-ttl 1 it imports" "$(kv "$WORK/g" get plain)" "hello world"

finish
