#!/usr/bin/env bash
# test_bulk: bulk put, get and delete with the Workers KV bulk JSON
# formats.  Happy paths: text, base64 (every byte 0..255), metadata,
# expiration and expiration_ttl, from a file and from stdin, 10,000
# entries.  Limits: 10,001 entries and files over 100 MiB are refused.  A
# malformed file (truncated JSON, a value that is a number, bad base64, an
# invalid key or an over-limit value or ttl in the middle, ...) is refused
# whole with a message naming the entry and its key, and leaves the store
# exactly as it was (same export, same change-feed head).
. "$(dirname "$0")/lib.sh"

S=$WORK/store
kv "$S" put a old-a 2>/dev/null
kv "$S" put b old-b --metadata '{"old":true}'

# --- bulk put -------------------------------------------------------------------------
for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done >"$WORK/bytes"
b64=$(base64 -w0 "$WORK/bytes")
exp=$(($(date +%s) + 3600))
cat >"$WORK/put.json" <<JSON
[
  {"key": "a", "value": "new-a"},
  {"key": "b", "value": "new-b"},
  {"key": "bin", "value": "$b64", "base64": true},
  {"key": "meta", "value": "m", "metadata": {"n": 0.1, "big": 12345678901234567890, "s": "é\u0001"}},
  {"key": "ttl", "value": "t", "expiration_ttl": 3600},
  {"key": "exp", "value": "e", "expiration": $exp, "base64": false, "other": [1, 2]},
  {"key": "esc\u00e9\ud83d\ude00\tx", "value": "line\nbreak \"q\" \\\\ \u0000end"}
]
JSON
check_refused "bulk put reports success like wrangler" 0 "Success! Put 7 keys" \
	"$KVCTL" "$S" bulk put "$WORK/put.json"
check_eq "text values are written" "$(kv "$S" get a) $(kv "$S" get b)" "new-a new-b"
kv "$S" get bin >"$WORK/bin.out"
check "a base64 value is decoded to its bytes (0..255)" cmp "$WORK/bytes" "$WORK/bin.out"
check_eq "a put replaces the old metadata" "$(kv "$S" get b --metadata)" \
	'{"value":"new-b","metadata":null}'
check_eq "metadata is kept with its exact numbers" "$(kv "$S" get meta --metadata)" \
	'{"value":"m","metadata":{"n":0.1,"big":12345678901234567890,"s":"é\u0001"}}'
ttl_exp=$(kv "$S" list --prefix ttl | sed -n 's/.*"expiration": //p')
check_eq "expiration_ttl sets an expiration about an hour ahead" \
	"$([ "$ttl_exp" -ge $((exp - 5)) ] && [ "$ttl_exp" -le $((exp + 5)) ] && echo yes)" yes
check_eq "expiration is kept as given" "$(kv "$S" list --prefix exp | sed -n 's/.*"expiration": //p')" "$exp"
check_eq "escapes in keys and values are decoded" \
	"$(kv "$S" get "$(printf 'esc\303\251\360\237\230\200\tx')" | od -An -c | tr -s ' ')" \
	"$(printf 'line\nbreak "q" \\ \000end' | od -An -c | tr -s ' ')"
check_refused "bulk put reads stdin with -" 0 "Success! Put 1 key" \
	sh -c 'echo "[{\"key\":\"stdin\",\"value\":\"s\"}]" | "$1" "$2" bulk put -' sh "$KVCTL" "$S"
check_eq "and writes it" "$(kv "$S" get stdin)" "s"
check_refused "an empty array puts nothing" 0 "Success! Put 0 keys" \
	sh -c 'echo "[]" | "$1" "$2" bulk put -' sh "$KVCTL" "$S"

# --- bulk get ---------------------------------------------------------------------------
echo '["a", "missing", "b", "a"]' >"$WORK/get.json"
# What wrangler 4 prints for a bulk get against Workers KV: the "values"
# object, as JSON.stringify(values, null, 2).
check_eq "bulk get maps keys to values as wrangler prints them, null when missing, each key once" \
	"$(kv "$S" bulk get "$WORK/get.json" 2>"$WORK/get.err")" \
	"$(printf '%s\n' '{' '  "a": "new-a",' '  "missing": null,' '  "b": "new-b"' '}')"
check_eq "and says Success! on stderr, as wrangler does after the values" \
	"$(cat "$WORK/get.err")" "Success!"
echo '{"keys": ["meta", {"key": "bin"}], "type": "text"}' >"$WORK/get2.json"
check_eq "bulk get takes {\"keys\": [...]} and shows binary values as base64" \
	"$(kv "$S" bulk get "$WORK/get2.json" 2>/dev/null | tr -d '\n ')" \
	"{\"meta\":\"m\",\"bin\":{\"value\":\"$b64\",\"base64\":true}}"
check_eq "bulk get --metadata adds the metadata" \
	"$(echo '["meta","a","zz"]' | kv "$S" bulk get - --metadata 2>/dev/null)" \
	"$(printf '%s\n' '{' '  "meta": {' '    "value": "m",' '    "metadata": {' \
		'      "n": 0.1,' '      "big": 12345678901234567890,' '      "s": "é\u0001"' \
		'    }' '  },' '  "a": {' '    "value": "new-a",' '    "metadata": null' '  },' \
		'  "zz": null' '}')"
check_eq "bulk get takes wrangler's [{\"name\": ...}] (what list prints)" \
	"$(kv "$S" list --prefix a | kv "$S" bulk get - 2>/dev/null | tr -d '\n ')" '{"a":"new-a"}'
check_eq "bulk get of no keys is {}" "$(echo '[]' | kv "$S" bulk get - 2>/dev/null)" "{}"
check_refused "bulk get of a non-key is refused" 1 \
	"kvctl: bulk entry 1: must be a key string or an object with \"key\" or \"name\"" \
	sh -c 'echo "[\"a\", 5]" | "$1" "$2" bulk get -' sh "$KVCTL" "$S"
check_refused "bulk get of an invalid key is refused" 1 \
	"kvctl: bulk entry 1 (key '..'): \"..\" is not allowed as a key name." \
	sh -c 'echo "[\"a\", \"..\"]" | "$1" "$2" bulk get -' sh "$KVCTL" "$S"

# --- refused files change nothing -------------------------------------------------------
before=$(state "$S")
# refuse NAME MESSAGE JSON: bulk put of JSON fails with MESSAGE, store unchanged.
refuse() {
	printf '%s' "$3" >"$WORK/bad.json"
	check_refused "$1: refused" 1 "$2" "$KVCTL" "$S" bulk put "$WORK/bad.json"
	check_eq "$1: the store is unchanged" "$(state "$S")" "$before"
}
refuse "truncated JSON" \
	"kvctl: bulk entry 1 (key 'b'): invalid JSON: unexpected end of file (unterminated string)" \
	'[{"key":"a","value":"x"},{"key":"b","value":"trunc'
refuse "truncated after an entry" \
	"kvctl: bulk file: invalid JSON: unexpected end of file (expected ',' or ']')" \
	'[{"key":"a","value":"x"},{"key":"b","value":"y"}'
refuse "a value that is a number" \
	"kvctl: bulk entry 1 (key 'b'): \"value\" must be a string" \
	'[{"key":"a","value":"x"},{"key":"b","value":5},{"key":"c","value":"z"}]'
refuse "a key that is a number" \
	"kvctl: bulk entry 0: \"key\" must be a string" '[{"key":7,"value":"x"}]'
refuse "an expiration that is a string" \
	"kvctl: bulk entry 0 (key 'a'): \"expiration\" must be a number" \
	'[{"key":"a","value":"x","expiration":"soon"}]'
refuse "an expiration_ttl with a fraction" \
	"kvctl: bulk entry 0 (key 'a'): \"expiration_ttl\" must be a whole number of seconds" \
	'[{"key":"a","value":"x","expiration_ttl":60.5}]'
refuse "base64 that is not a boolean" \
	"kvctl: bulk entry 0 (key 'a'): \"base64\" must be true or false" \
	'[{"key":"a","value":"eA==","base64":"yes"}]'
refuse "an entry that is not an object" \
	"kvctl: bulk entry 1: must be an object with \"key\" and \"value\"" '[{"key":"a","value":"x"},"b"]'
refuse "a missing value" "kvctl: bulk entry 0 (key 'a'): \"value\" is missing" '[{"key":"a"}]'
refuse "a missing key" "kvctl: bulk entry 0: \"key\" is missing" '[{"value":"x"}]'
refuse "a key given twice" "kvctl: bulk entry 0 (key 'a'): \"key\" is given twice" \
	'[{"key":"a","value":"x","key":"b"}]'
refuse "an object instead of an array" \
	"kvctl: bulk file: expected an array of {\"key\", \"value\"} objects" '{"key":"a","value":"x"}'
refuse "data after the array" \
	"kvctl: bulk file: invalid JSON: unexpected data after the JSON value at line 1, column 27" \
	'[{"key":"a","value":"x"}] []'
refuse "an empty file" "kvctl: bulk file: invalid JSON: unexpected end of file (the file is empty)" ''
refuse "bad base64 in the middle" "kvctl: bulk entry 1 (key 'b'): \"value\" is not valid base64" \
	'[{"key":"a","value":"eA==","base64":true},{"key":"b","value":"e A==","base64":true},{"key":"c","value":"x"}]'
refuse "base64 without padding" "kvctl: bulk entry 0 (key 'a'): \"value\" is not valid base64" \
	'[{"key":"a","value":"eA","base64":true}]'
refuse "an invalid key in the middle" \
	"kvctl: bulk entry 2 (key '..'): \"..\" is not allowed as a key name." \
	'[{"key":"a","value":"1"},{"key":"b","value":"2"},{"key":"..","value":"3"},{"key":"d","value":"4"}]'
refuse "a 513-byte key in the middle" \
	"kvctl: bulk entry 1 (key '$(repeat_char k 80)...'): UTF-8 encoded length of 513 exceeds key length limit of 512." \
	"[{\"key\":\"a\",\"value\":\"1\"},{\"key\":\"$(repeat_char k 513)\",\"value\":\"2\"},{\"key\":\"c\",\"value\":\"3\"}]"
refuse "a ttl under the minimum in the middle" \
	"kvctl: bulk entry 1 (key 'b'): Invalid expiration_ttl of 30. Expiration TTL must be at least 60." \
	'[{"key":"a","value":"1"},{"key":"b","value":"2","expiration_ttl":30},{"key":"c","value":"3"}]'
refuse "a past expiration in the middle" \
	"kvctl: bulk entry 1 (key 'b'): Invalid expiration of 1000. Please specify integer greater than the current number of seconds since the UNIX epoch." \
	'[{"key":"a","value":"1"},{"key":"b","value":"2","expiration":1000},{"key":"c","value":"3"}]'
refuse "metadata over 1024 bytes in the middle" \
	"kvctl: bulk entry 1 (key 'b'): Metadata length of 1025 exceeds limit of 1024." \
	"[{\"key\":\"a\",\"value\":\"1\"},{\"key\":\"b\",\"value\":\"2\",\"metadata\":\"$(repeat_char m 1023)\"}]"
{
	printf '[{"key":"a","value":"1"},{"key":"big","value":"'
	repeat_char v 26214401
	printf '"},{"key":"c","value":"3"}]'
} >"$WORK/bigvalue.json"
check_refused "an over-limit value in the middle: refused" 1 \
	"kvctl: bulk entry 1 (key 'big'): Value length of 26214401 exceeds limit of 26214400." \
	"$KVCTL" "$S" bulk put "$WORK/bigvalue.json"
check_eq "an over-limit value in the middle: the store is unchanged" "$(state "$S")" "$before"
rm -f "$WORK/bigvalue.json"
check_refused "bulk delete with an invalid key in the middle: refused" 1 \
	"kvctl: bulk entry 1 (key ''): Key name cannot be empty." \
	sh -c 'echo "[\"a\", \"\", \"b\"]" | "$1" "$2" bulk delete -' sh "$KVCTL" "$S"
check_eq "bulk delete with an invalid key in the middle: the store is unchanged" \
	"$(state "$S")" "$before"

# --- sizes ----------------------------------------------------------------------------------
gen() { # gen N: a bulk put file of N entries
	seq -f 'k%05g' 1 "$1" | sed 's/.*/{"key":"&","value":"v&"}/' | paste -sd, | sed 's/^/[/; s/$/]/'
}
gen 10001 >"$WORK/10001.json"
check_refused "10,001 entries are refused" 1 "kvctl: Bulk file has 10001 entries; the limit is 10000." \
	"$KVCTL" "$S" bulk put "$WORK/10001.json"
check_eq "10,001 entries: the store is unchanged" "$(state "$S")" "$before"
truncate -s 104857601 "$WORK/huge.json"
check_refused "a file over 100 MiB is refused by its size" 1 \
	"kvctl: Bulk file is 104857601 bytes; the limit is 104857600." \
	"$KVCTL" "$S" bulk put "$WORK/huge.json"
rm -f "$WORK/huge.json"
check_refused "a stream over 100 MiB is refused" 1 \
	"kvctl: Bulk file is over 104857600 bytes; the limit is 104857600." \
	sh -c 'head -c 104857601 /dev/zero | "$1" "$2" bulk put -' sh "$KVCTL" "$S"
check_eq "oversize files: the store is unchanged" "$(state "$S")" "$before"

S2=$WORK/big
gen 10000 >"$WORK/10000.json"
check_refused "10,000 entries are accepted" 0 "Success! Put 10000 keys" \
	"$KVCTL" "$S2" bulk put "$WORK/10000.json"
check_eq "all 10,000 are listed" "$(kv "$S2" list | names | wc -l)" 10000
seq -f '"k%05g"' 1 10000 | paste -sd, | sed 's/^/[/; s/$/]/' >"$WORK/10000.keys"
kv "$S2" bulk get "$WORK/10000.keys" >"$WORK/10000.values"
check_eq "bulk get of 10,000 keys returns each value" \
	"$(grep -o '"k[0-9]*": "vk[0-9]*"' "$WORK/10000.values" | wc -l)" 10000
check_eq "the store counts 10,000 keys" "$(kv "$S2" stats | sed -n 's/.*"keys": \([0-9]*\),/\1/p')" 10000
check_refused "bulk delete of 10,000 keys" 0 "Success! Deleted 10000 keys" \
	"$KVCTL" "$S2" bulk delete "$WORK/10000.keys"
check_eq "leaves none" "$(kv "$S2" list)" "[]"
check_eq "check accepts the emptied store" "$(kv "$S2" check)" "ok: 10000 records checked"

# --- progress -------------------------------------------------------------------------------
S3=$WORK/tty
kv "$S3" bulk put "$WORK/10000.json" 2>"$WORK/notty.err"
check_eq "off a terminal there is no progress line" "$(cat "$WORK/notty.err")" \
	"$(printf "kvctl: created store '%s'\nSuccess! Put 10000 keys" "$S3")"
t script -qec "'$KVCTL' '$S3' bulk put '$WORK/10000.json'" /dev/null >"$WORK/tty.out"
check "on a terminal bulk put draws a progress line" \
	grep -q "bulk put: [0-9]*/10000 keys [0-9]*% " "$WORK/tty.out"
check "and leaves its last line, total/total, before the summary" \
	grep -qE "$(printf 'bulk put: 10000/10000 keys 100%% .* in [0-9:]+\r$')" "$WORK/tty.out"
check "the summary on a line of its own" grep -qx "$(printf 'Success! Put 10000 keys\r')" \
	"$WORK/tty.out"
t script -qec "'$KVCTL' '$S3' export" /dev/null >"$WORK/tty.out"
check_eq "export to the terminal itself draws no progress over the data" \
	"$(grep -c "export: " "$WORK/tty.out" || true)" 0
t script -qec "'$KVCTL' '$S3' export >/dev/null" /dev/null >"$WORK/tty.out"
check "export to a pipe or file draws progress on the terminal" \
	grep -qE "export: [0-9]+(/~?[0-9]+)? keys" "$WORK/tty.out"

# --- bulk delete -------------------------------------------------------------------------------
echo '["a", {"key": "b", "value": "ignored"}, "never-existed", {"name": "c", "metadata": 1}]' \
	>"$WORK/del.json"
kv "$S" put c v
check_refused "bulk delete takes strings and objects with key or name" 0 "Success! Deleted 4 keys" \
	"$KVCTL" "$S" bulk delete "$WORK/del.json"
check_eq "the keys are gone, the rest stay" "$(kv "$S" list | names | tr '\n' ' ')" \
	"$(printf 'bin esc\303\251\360\237\230\200\\tx exp meta stdin ttl ')"
check_eq "check accepts the store" "$(kv "$S" check | sed 's/[0-9]* records/N records/')" \
	"ok: N records checked"
finish
