#!/usr/bin/env bash
# test_export: kvctl export prints the namespace as a bulk put file (text
# values as strings, other bytes as base64, expiration and metadata kept),
# and `kvctl A export | kvctl B bulk put -` copies a namespace exactly:
# B's export is identical to A's and binary values compare equal byte for
# byte; --prefix exports only the keys under it; an empty namespace
# exports as [].
. "$(dirname "$0")/lib.sh"

A=$WORK/a
B=$WORK/b
C=$WORK/c
check_eq "an empty namespace exports as []" "$(kv "$A" export 2>/dev/null)" "[]"

for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done >"$WORK/bytes"
head -c 200000 /dev/urandom >"$WORK/random"
exp=$(($(date +%s) + 86400))
kv "$A" put text "plain text"
kv "$A" put empty ""
kv "$A" put bin:bytes --path "$WORK/bytes"
kv "$A" put bin:random --path "$WORK/random"
printf 'nul\000inside' | kv "$A" put nul
kv "$A" put 'ключ 日本 🙂' 'значение' --metadata '{"lang":"ru","n":[1,2.50,-0.0,1e300]}'
kv "$A" put "$(repeat_char k 512)" 512-byte-key --expiration "$exp"
kv "$A" put "$(repeat_char k 511)" 511-byte-key --ttl 7200
kv "$A" put ctl "$(printf 'tab\there\r\n\001\037 "quote" \\ back')" --metadata '"string metadata"'
kv "$A" put meta:null v --metadata 'null'
kv "$A" put gone v
kv "$A" delete gone

kv "$A" export >"$WORK/a.json"
check_eq "export has one entry per live key" "$(grep -c '^{"key":' "$WORK/a.json")" 10
check_eq "a text value is a JSON string" "$(grep '^{"key":"text"' "$WORK/a.json")" \
	'{"key":"text","value":"plain text"},'
check_eq "a value that is not UTF-8 is base64" "$(grep '^{"key":"bin:bytes"' "$WORK/a.json")" \
	"{\"key\":\"bin:bytes\",\"value\":\"$(base64 -w0 "$WORK/bytes")\",\"base64\":true},"
check_eq "expiration and metadata are exported" "$(grep -c "\"expiration\":$exp" "$WORK/a.json")" 1
check_eq "metadata keeps its exact text" \
	"$(grep -o '"metadata":{"lang":"ru","n":\[1,2.50,-0.0,1e300\]}' "$WORK/a.json" | wc -l)" 1

kv "$A" export | kv "$B" bulk put - 2>"$WORK/err"
check_eq "export | bulk put imports every key" "$(tail -n 1 "$WORK/err")" "Success! Put 10 keys"
kv "$B" export >"$WORK/b.json"
check "the copy exports identically" cmp "$WORK/a.json" "$WORK/b.json"
kv "$B" get bin:random >"$WORK/random.b"
check "binary values are equal byte for byte" cmp "$WORK/random" "$WORK/random.b"
kv "$B" get nul >"$WORK/nul.b"
check_eq "a value with a NUL survives" "$(od -An -c "$WORK/nul.b" | tr -s ' ')" \
	"$(printf 'nul\000inside' | od -An -c | tr -s ' ')"
# A key with a ttl is exported with its ttl, so the copy's expiration is
# counted from the import: the same, or a few seconds later.
expirations() { kv "$1" list | sed -n 's/.*"expiration": \([0-9]*\).*/\1/p'; }
check_eq "the list of the copy is the list of the original, but for expirations" \
	"$(kv "$B" list | sed 's/"expiration": [0-9]*/"expiration": E/')" \
	"$(kv "$A" list | sed 's/"expiration": [0-9]*/"expiration": E/')"
check_eq "an expiration is the same, a ttl's as late as the import" \
	"$(paste <(expirations "$A") <(expirations "$B") | awk '{ d = $2 - $1; print (d >= 0 && d <= 30) ? "ok" : "differs by " d }' | sort -u)" ok
check_eq "the copy counts the same keys and bytes" \
	"$(kv "$B" stats | grep -E '"(keys|bytes)"')" "$(kv "$A" stats | grep -E '"(keys|bytes)"')"

kv "$A" export --prefix bin: >"$WORK/bin.json"
check_eq "--prefix exports only the keys under it" \
	"$(sed -n 's/^{"key":"\([^"]*\)".*/\1/p' "$WORK/bin.json" | tr '\n' ' ')" "bin:bytes bin:random "
kv "$C" bulk put "$WORK/bin.json" 2>/dev/null
check_eq "and imports on its own" "$(kv "$C" export)" "$(cat "$WORK/bin.json")"
check_eq "export of a prefix with no keys is []" "$(kv "$A" export --prefix nothing)" "[]"

check_eq "check accepts the original" "$(kv "$A" check)" "ok: 11 records checked"
check_eq "check accepts the copy" "$(kv "$B" check)" "ok: 10 records checked"

# A key with a ttl is exported with its ttl, which the import re-arms: a
# key whose ttl ends within min_ttl (61 s, two seconds later) is copied
# instead of failing the whole import as an expiration too close to now.
T=$WORK/ttl
U=$WORK/ttl-copy
kv "$T" put short "almost gone" --ttl 61
kv "$T" put plain "no expiry"
sleep 2
kv "$T" export >"$WORK/ttl.json"
check_eq "a key with a ttl is exported with expiration_ttl" \
	"$(grep '^{"key":"short"' "$WORK/ttl.json")" '{"key":"short","value":"almost gone","expiration_ttl":61}'
check "export | bulk put copies a key whose ttl ends within min_ttl" \
	kv "$U" bulk put "$WORK/ttl.json"
check_eq "the copy holds the short-lived key" "$(kv "$U" get short)" "almost gone"
check_eq "with its ttl" "$(kv "$U" export | grep -c '"expiration_ttl":61')" 1
check_eq "the copy's check is clean" "$(kv "$U" check)" "ok: 2 records checked"
finish
