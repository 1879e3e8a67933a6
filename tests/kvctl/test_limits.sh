#!/usr/bin/env bash
# test_limits: every data-model limit through kvctl put, at the boundary
# and one past it, with Workers KV's exact message on stderr and exit 1,
# and a refused put changes nothing: keys of 512 bytes (ASCII and
# multi-byte) are accepted and 513 refused; "", "." and ".." are refused;
# a value of exactly 26214400 bytes is accepted and one byte more refused,
# from --path and from a pipe, and a huge file is refused by its size
# without being read; metadata of 1024 bytes is accepted and 1025 refused,
# and text that is not JSON is refused; a ttl of 60 is accepted and 59
# (and 0) refused, --min-ttl 1 allows a ttl of 1; an expiration 59 s ahead
# is refused.
. "$(dirname "$0")/lib.sh"

S=$WORK/store
kv "$S" put anchor value 2>/dev/null
before=$(state "$S")

# --- keys ----------------------------------------------------------------------
k512=$(repeat_char k 512)
k513=$(repeat_char k 513)
e512=$(for i in $(seq 256); do printf 'é'; done)
check "a 512-byte ASCII key is accepted" "$KVCTL" "$S" put "$k512" v512
check_eq "and reads back" "$(kv "$S" get "$k512")" "v512"
check_eq "the multi-byte fixture key is 512 bytes" "$(printf %s "$e512" | wc -c)" 512
check "a 512-byte key of 2-byte characters is accepted" "$KVCTL" "$S" put "$e512" vé
check_eq "and reads back" "$(kv "$S" get "$e512")" "vé"
kv "$S" delete "$k512"
kv "$S" delete "$e512"
before=$(state "$S")
check_refused "a 513-byte key is refused" 1 \
	"kvctl: UTF-8 encoded length of 513 exceeds key length limit of 512." \
	"$KVCTL" "$S" put "$k513" v
check_refused "a 513-byte key of 2- and 1-byte characters is refused" 1 \
	"kvctl: UTF-8 encoded length of 513 exceeds key length limit of 512." \
	"$KVCTL" "$S" put "${e512}x" v
check_refused "the empty key is refused" 1 \
	'kvctl: Key name cannot be empty.' \
	"$KVCTL" "$S" put "" v
check_refused "the key . is refused" 1 \
	'kvctl: "." is not allowed as a key name.' \
	"$KVCTL" "$S" put . v
check_refused "the key .. is refused" 1 \
	'kvctl: ".." is not allowed as a key name.' \
	"$KVCTL" "$S" put .. v
check_refused "a key that is not UTF-8 is refused" 1 "kvctl: Key is not valid UTF-8." \
	"$KVCTL" "$S" put "$(printf 'bad\377')" v
check_refused "get of a 513-byte key says why" 1 \
	"kvctl: UTF-8 encoded length of 513 exceeds key length limit of 512." \
	"$KVCTL" "$S" get "$k513"
check_eq "refused keys changed nothing" "$(state "$S")" "$before"

# --- values --------------------------------------------------------------------
head -c 26214400 /dev/urandom >"$WORK/max"
check "a value of exactly 26214400 bytes is accepted from --path" \
	"$KVCTL" "$S" put big --path "$WORK/max"
kv "$S" get big >"$WORK/max.out"
check "and reads back whole" cmp "$WORK/max" "$WORK/max.out"
check "a value of exactly 26214400 bytes is accepted from a pipe" \
	sh -c 'cat "$1" | "$2" "$3" put big2' sh "$WORK/max" "$KVCTL" "$S"
kv "$S" get big2 >"$WORK/max.out"
check "and reads back whole" cmp "$WORK/max" "$WORK/max.out"
kv "$S" delete big
kv "$S" delete big2
rm -f "$WORK/max.out"
before=$(state "$S")
cp "$WORK/max" "$WORK/over" && printf x >>"$WORK/over"
check_refused "26214401 bytes from --path are refused" 1 \
	"kvctl: Value length of 26214401 exceeds limit of 26214400." \
	"$KVCTL" "$S" put big --path "$WORK/over"
check_refused "26214401 bytes from a pipe are refused" 1 \
	"kvctl: Value length of 26214401 exceeds limit of 26214400." \
	sh -c 'cat "$1" | "$2" "$3" put big' sh "$WORK/over" "$KVCTL" "$S"
check_refused "26214401 bytes from stdin (a file) are refused" 1 \
	"kvctl: Value length of 26214401 exceeds limit of 26214400." \
	sh -c '"$2" "$3" put big <"$1"' sh "$WORK/over" "$KVCTL" "$S"
rm -f "$WORK/over"
truncate -s 8G "$WORK/huge"
check_refused "an 8 GiB file is refused by its size, at once" 1 \
	"kvctl: Value length of 8589934592 exceeds limit of 26214400." \
	timeout 10 "$KVCTL" "$S" put big --path "$WORK/huge"
rm -f "$WORK/huge"
check_refused "a long stream is refused after reading one byte past the limit" 1 \
	"kvctl: Value length of 26214401 exceeds limit of 26214400." \
	sh -c 'head -c 200000000 /dev/zero | "$1" "$2" put big' sh "$KVCTL" "$S"
check_eq "refused values changed nothing" "$(state "$S")" "$before"

# --- metadata ------------------------------------------------------------------
m1024="\"$(repeat_char m 1022)\""
m1025="\"$(repeat_char m 1023)\""
check "metadata of 1024 bytes is accepted" "$KVCTL" "$S" put meta v --metadata "$m1024"
check_eq "and reads back" "$(kv "$S" get meta --metadata)" "{\"value\":\"v\",\"metadata\":$m1024}"
check "metadata whose compact form is 1024 bytes is accepted" \
	"$KVCTL" "$S" put meta2 v --metadata "{ \"k\" : \"$(repeat_char m 1016)\" }"
kv "$S" delete meta
kv "$S" delete meta2
before=$(state "$S")
check_refused "metadata of 1025 bytes is refused" 1 \
	"kvctl: Metadata length of 1025 exceeds limit of 1024." \
	"$KVCTL" "$S" put meta v --metadata "$m1025"
check_refused "metadata that is not JSON is refused" 1 "kvctl: Metadata is not valid JSON." \
	"$KVCTL" "$S" put meta v --metadata '{"a":'
check_refused "bare words are not JSON" 1 "kvctl: Metadata is not valid JSON." \
	"$KVCTL" "$S" put meta v --metadata 'hello'
check_eq "refused metadata changed nothing" "$(state "$S")" "$before"

# --- ttl and expiration ------------------------------------------------------------
check "a ttl of 60 is accepted" "$KVCTL" "$S" put ttl60 v --ttl 60
now=$(date +%s)
exp=$(kv "$S" list --prefix ttl60 | sed -n 's/.*"expiration": \([0-9]*\).*/\1/p')
if [ -n "$exp" ] && [ "$exp" -ge $((now + 60)) ] && [ "$exp" -le $((now + 62)) ]; then
	ok "its expiration is about now + 60"
else
	not_ok "its expiration is about now + 60 (now $now, expiration '$exp')"
fi
check "an expiration 120 s ahead is accepted" "$KVCTL" "$S" put exp120 v --expiration $((now + 120))
check_eq "and listed as given" "$(kv "$S" list --prefix exp120 | sed -n 's/.*"expiration": //p')" \
	"$((now + 120))"
kv "$S" delete ttl60
kv "$S" delete exp120
before=$(state "$S")
check_refused "a ttl of 59 is refused" 1 \
	"kvctl: Invalid expiration_ttl of 59. Expiration TTL must be at least 60." \
	"$KVCTL" "$S" put t v --ttl 59
check_refused "a ttl of 0 is refused" 1 \
	"kvctl: Invalid expiration_ttl of 0. Please specify integer greater than 0." \
	"$KVCTL" "$S" put t v --ttl 0
check_refused "a ttl of 1 is refused without --min-ttl" 1 \
	"kvctl: Invalid expiration_ttl of 1. Expiration TTL must be at least 60." \
	"$KVCTL" "$S" put t v --ttl 1
exp=$(($(date +%s) + 59))
check_refused "an expiration 59 s ahead is refused" 1 \
	"kvctl: Invalid expiration of $exp. Expiration times must be at least 60 seconds in the future." \
	"$KVCTL" "$S" put t v --expiration "$exp"
check_refused "an expiration in the past is refused" 1 \
	"kvctl: Invalid expiration of 1000. Please specify integer greater than the current number of seconds since the UNIX epoch." \
	"$KVCTL" "$S" put t v --expiration 1000
check_refused "--min-ttl 1 still refuses a ttl of 0" 1 \
	"kvctl: Invalid expiration_ttl of 0. Please specify integer greater than 0." \
	"$KVCTL" --min-ttl 1 "$S" put t v --ttl 0
check_eq "refused ttls and expirations changed nothing" "$(state "$S")" "$before"
check "with --min-ttl 1 a ttl of 1 is accepted" "$KVCTL" --min-ttl 1 "$S" put t1 v --ttl 1
check "--min-ttl may follow the command" "$KVCTL" "$S" put t2 v --ttl 1 --min-ttl 1

check_eq "check accepts the store" "$(kv "$S" check | sed 's/[0-9]* records/N records/')" \
	"ok: N records checked"
finish
