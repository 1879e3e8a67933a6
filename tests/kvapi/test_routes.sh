#!/usr/bin/env bash
# test_routes: every route of kvapi through curl, its happy path and its
# errors, the exact JSON shapes of the Cloudflare API v4 checked with jq.
. "$(dirname "$0")/lib.sh"

start_kvapi "$WORK/root"
JSON=(-H 'Content-Type: application/json')

# ---------------------------------------------------------- namespaces
api -X POST "${JSON[@]}" -d '{"title":"alpha"}' "$BASE" >/dev/null
check_eq "create: 200" "$(status)" 200
check_json "create: the envelope and a namespace" \
	'(.success == true) and (.errors == []) and (.messages == []) and
	 (.result.title == "alpha") and (.result.id | test("^[0-9a-f]{32}$")) and
	 (.result.supports_url_encoding == true)'
NS=$(jq -r .result.id "$WORK/body")
check "create: the store is ROOT/<id>" test -f "$WORK/root/$NS/data.mdb"
api_refused "a duplicate title" 400 10014 -X POST "${JSON[@]}" -d '{"title":"alpha"}' "$BASE"
api_refused "no title" 400 10019 -X POST "${JSON[@]}" -d '{}' "$BASE"
api_refused "bad JSON" 400 10012 -X POST "${JSON[@]}" -d '{"title":' "$BASE"
B2=$(new_ns beta)
B3=$(new_ns gamma)
api "$BASE?per_page=2&page=1&order=title&direction=asc" >/dev/null
check_json "list page 1: two by title, result_info" \
	'(.result | map(.title)) == ["alpha","beta"] and
	 .result_info == {"page":1,"per_page":2,"count":2,"total_count":3}'
api "$BASE?per_page=2&page=2" >/dev/null
check_json "list page 2: the last one" '(.result | map(.title)) == ["gamma"] and .result_info.count == 1'
api "$BASE?per_page=2&page=3" >/dev/null
check_json "list page 3: empty (wrangler stops there)" '.result == [] and .result_info.count == 0'
api "$BASE?direction=desc" >/dev/null
check_json "list desc" '(.result | map(.title)) == ["gamma","beta","alpha"]'
api_refused "page 0" 400 10007 "$BASE?page=0"
api_refused "per_page not a number" 400 10008 "$BASE?per_page=x"
api -X PUT "${JSON[@]}" -d '{"title":"beta2"}' "$BASE/$B2" >/dev/null
check_json "rename" ".result == {\"id\":\"$B2\",\"title\":\"beta2\",\"supports_url_encoding\":true}"
api_refused "rename to a taken title" 400 10014 -X PUT "${JSON[@]}" -d '{"title":"alpha"}' "$BASE/$B2"
api "$BASE/$B2" >/dev/null
check_json "get" ".result.title == \"beta2\""
check "titles persist in ROOT/namespaces.json" \
	jq -e ".\"$B2\" == \"beta2\"" "$WORK/root/namespaces.json"
api -X DELETE "$BASE/$B3" >/dev/null
check_json "delete" '.success == true and .result == {}'
check "delete removes the store" test ! -e "$WORK/root/$B3"
api_refused "a deleted namespace" 404 10013 "$BASE/$B3"
api_refused "keys of a missing namespace" 404 10013 "$BASE/$B3/keys"
api_refused "a malformed namespace id" 400 10011 "$BASE/not-hex/keys"
api_refused "unknown route" 404 7000 "$BASE/$NS/nothing"
api_refused "outside the KV API" 404 7000 "http://$ADDR/client/v4/zones"
api_refused "wrong method" 405 7001 -X PATCH "$BASE/$NS/values/k"

# -------------------------------------------------------------- values
V="$BASE/$NS/values"
head -c 300000 /dev/urandom >"$WORK/bin"
api -X PUT --data-binary @"$WORK/bin" "$V/bin" >/dev/null
check_json "put a raw binary body" '.success == true and .result == {}'
t curl -sS -o "$WORK/got" "$V/bin"
check "get returns the bytes exactly" cmp "$WORK/bin" "$WORK/got"
check "kvctl reads the same bytes" sh -c "'$KVCTL' '$WORK/root/$NS' get bin | cmp - '$WORK/bin'"
printf 'x' | api -X PUT --data-binary @- "$V/a%2Fb" >/dev/null
check_eq "%2F is a slash" "$(kvctl "$WORK/root/$NS" get a/b)" x
printf 'y' | api -X PUT --data-binary @- "$V/c%252Fd" >/dev/null
check_eq "decoded exactly once" "$(kvctl "$WORK/root/$NS" get 'c%2Fd')" y
printf 'z' | api -X PUT --data-binary @- "$V/raw/slash%20sp" >/dev/null
check_eq "an unencoded slash is part of the key" "$(kvctl "$WORK/root/$NS" get 'raw/slash sp')" z
check_eq "and reads back encoded" "$(t curl -sS "$V/raw%2Fslash%20sp")" z
printf '1' | api -X PUT --data-binary @- "$V/100%" >/dev/null
check_eq "a lone % stays a %" "$(kvctl "$WORK/root/$NS" get '100%')" 1
EXP=$(($(date +%s) + 3600))
api -X PUT --data-binary 'v' "$V/exp?expiration=$EXP" >/dev/null
t curl -sS -D "$WORK/headers" -o /dev/null "$V/exp"
check_eq "expiration header" "$(sed -n 's/^expiration: \([0-9]*\).*/\1/ip' "$WORK/headers")" "$EXP"
api -X PUT --data-binary 'v' "$V/ttl?expiration_ttl=120" >/dev/null
check_eq "expiration_ttl sets an expiration" \
	"$(kvctl "$WORK/root/$NS" list --prefix ttl | jq '.[0].expiration > 0')" true
api_refused "a ttl under 60" 400 10012 -X PUT --data-binary 'v' "$V/ttl?expiration_ttl=30"
check_json "with Workers KV's message" \
	'.errors[0].message == "Invalid expiration_ttl of 30. Expiration TTL must be at least 60."'
api_refused "a ttl that is not a number" 400 10012 -X PUT --data-binary 'v' "$V/ttl?expiration_ttl=abc"
api -X PUT -F 'value=hello' -F 'metadata={"a": [1, 2]}' "$V/mp" >/dev/null
check_json "multipart put" '.success == true'
check_eq "multipart value" "$(kvctl "$WORK/root/$NS" get mp)" hello
api "$BASE/$NS/metadata/mp" >/dev/null
check_json "metadata route" '.result == {"a":[1,2]}'
api -X PUT -F "value=@$WORK/bin;filename=blob;type=application/octet-stream" -F 'metadata={"b":1}' "$V/mpbin" >/dev/null
t curl -sS -o "$WORK/got" "$V/mpbin"
check "multipart binary file part is exact" cmp "$WORK/bin" "$WORK/got"
api_refused "metadata that is not JSON" 400 10012 -X PUT -F 'value=x' -F 'metadata=not json' "$V/mp2"
api_refused "a malformed multipart body" 400 10012 -X PUT -H 'Content-Type: multipart/form-data; boundary=zz' --data-binary $'--zz\r\nbroken' "$V/mp3"
api_refused "multipart without a boundary" 400 10012 -X PUT -H 'Content-Type: multipart/form-data' --data-binary 'x' "$V/mp4"
api "$BASE/$NS/metadata/bin" >/dev/null
check_json "metadata of a key without: null" '.success == true and .result == null'
api_refused "a missing key" 404 10009 "$V/nope"
api_refused "metadata of a missing key" 404 10009 "$BASE/$NS/metadata/nope"
api -X DELETE "$V/bin" >/dev/null
check_json "delete" '.success == true'
api -X DELETE "$V/bin" >/dev/null
check_json "deleting a missing key succeeds" '.success == true'
LONG=$(printf 'k%.0s' $(seq 513))
api_refused "a key over 512 bytes" 414 10020 -X PUT --data-binary v "$V/$LONG"
check_json "with Workers KV's message" '.errors[0].message | test("exceeds key length limit of 512")'
api_refused "metadata over 1024 bytes" 413 10024 -X PUT -F 'value=x' -F "metadata={\"m\":\"$(printf 'm%.0s' $(seq 1100))\"}" "$V/bigmeta"

# ---------------------------------------------------------------- keys
for i in $(seq 1 25); do echo "{\"key\":\"p/$(printf %02d "$i")\",\"value\":\"$i\",\"metadata\":{\"i\":$i}}"; done |
	jq -s . >"$WORK/bulk.json"
api -X PUT "${JSON[@]}" --data-binary @"$WORK/bulk.json" "$BASE/$NS/bulk" >/dev/null
check_json "bulk put" '.result == {"successful_key_count":25,"unsuccessful_keys":[]}'
api "$BASE/$NS/keys?prefix=p%2F&limit=10" >/dev/null
check_json "keys page 1" '(.result | length) == 10 and .result[0] == {"name":"p/01","metadata":{"i":1}}
	and .result_info.count == 10 and (.result_info.cursor | length > 0)'
C=$(jq -r .result_info.cursor "$WORK/body")
api -G --data-urlencode "cursor=$C" --data-urlencode 'prefix=p/' --data-urlencode 'limit=10' "$BASE/$NS/keys" >/dev/null
check_json "keys page 2 from the cursor" '.result[0].name == "p/11" and .result_info.count == 10'
C=$(jq -r .result_info.cursor "$WORK/body")
api -G --data-urlencode "cursor=$C" --data-urlencode 'prefix=p/' --data-urlencode 'limit=10' "$BASE/$NS/keys" >/dev/null
check_json "last page: cursor is empty" '.result_info == {"count":5,"cursor":""}'
api_refused "limit over 1000" 400 10028 "$BASE/$NS/keys?limit=1001"
check_json "with Workers KV's message" '.errors[0].message == "Invalid key_count_limit of 1001. Please specify an integer less than 1000."'
api_refused "a negative limit" 400 10028 "$BASE/$NS/keys?limit=-1"
check_json "with Workers KV's message" '.errors[0].message == "Invalid key_count_limit of -1. Please specify an integer greater than 0."'
api_refused "limit not a number" 400 10028 "$BASE/$NS/keys?limit=ten"
api_refused "a malformed cursor" 400 10012 "$BASE/$NS/keys?cursor=garbage"

# ---------------------------------------------------------------- bulk
api -X PUT "${JSON[@]}" -d '[{"key":"j","value":"{\"n\":1}"},{"key":"b","value":"/w==","base64":true}]' "$BASE/$NS/bulk" >/dev/null
check_json "bulk put with base64" '.result.successful_key_count == 2'
check_eq "base64 is decoded" "$(kvctl "$WORK/root/$NS" get b | od -An -tx1 | tr -d ' ')" ff
api -X POST "${JSON[@]}" -d '{"keys":["p/01","nope","p/01"]}' "$BASE/$NS/bulk/get" >/dev/null
check_json "bulk get: values, null for missing, each key once" \
	'.result == {"values":{"p/01":"1","nope":null}}'
api -X POST "${JSON[@]}" -d '{"keys":["p/02","j"],"withMetadata":true,"type":"json"}' "$BASE/$NS/bulk/get" >/dev/null
check_json "bulk get withMetadata, type json" \
	'.result.values == {"p/02":{"value":2,"metadata":{"i":2}},"j":{"value":{"n":1},"metadata":null}}'
api_refused "type json of a value that is not JSON" 400 10012 -X POST "${JSON[@]}" -d '{"keys":["b"],"type":"json"}' "$BASE/$NS/bulk/get"
api_refused "an unknown type" 400 10012 -X POST "${JSON[@]}" -d '{"keys":["j"],"type":"xml"}' "$BASE/$NS/bulk/get"
api_refused "bulk/get of a key kvcore refuses" 400 10012 -X POST "${JSON[@]}" -d '{"keys":["j",".."]}' "$BASE/$NS/bulk/get"
check_json "with the entry and Workers KV's message, as kvctl says it" '.errors[0].message == "bulk entry 1 (key '"'..'"'): \"..\" is not allowed as a key name."'
api -X POST "${JSON[@]}" -d '["p/01","p/02"]' "$BASE/$NS/bulk/delete" >/dev/null
check_json "bulk/delete" '.result == {"successful_key_count":2,"unsuccessful_keys":[]}'
api -X DELETE "${JSON[@]}" -d '["p/03","p/04"]' "$BASE/$NS/bulk" >/dev/null
check_json "the older bulk DELETE" '.result.successful_key_count == 2'
check_eq "they are gone" "$(kvctl "$WORK/root/$NS" list --prefix p/ | jq -r '.[0].name')" p/05
api -X POST "${JSON[@]}" -d '[{"name":"p/05"},{"key":"p/06"}]' "$BASE/$NS/bulk/delete" >/dev/null
check_json "bulk/delete of what list prints, and of {key} objects" '.result.successful_key_count == 2'
check_eq "those are gone too" "$(kvctl "$WORK/root/$NS" list --prefix p/ | jq -r '.[0].name')" p/07
api_refused "a bad entry refuses the whole bulk put" 400 10012 -X PUT "${JSON[@]}" -d '[{"key":"ok","value":"1"},{"key":"","value":"2"}]' "$BASE/$NS/bulk"
check_json "with Workers KV's message for the entry" '.errors[0].message == "bulk entry 1 (key '"''"'): Key name cannot be empty."'
check "and nothing of it was written" sh -c "! '$KVCTL' '$WORK/root/$NS' get ok"
api_refused "a bulk body of the wrong shape" 400 10012 -X PUT "${JSON[@]}" -d '{"not":"a list"}' "$BASE/$NS/bulk"
api_refused "a bulk ttl under 60" 400 10012 -X PUT "${JSON[@]}" -d '[{"key":"t","value":"1","expiration_ttl":10}]' "$BASE/$NS/bulk"

finish
