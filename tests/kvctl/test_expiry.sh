#!/usr/bin/env bash
# test_expiry: with --min-ttl 1 a key put with a ttl of 1 is gone from get
# and list (and export) once it has expired, before anything removes it;
# stats counts it as expired_pending; reap removes it, says how many, and
# leaves a tombstone; keys without a ttl, or with a long one, stay; a
# re-put re-arms the ttl.
. "$(dirname "$0")/lib.sh"

S=$WORK/store
kvm() { kv --min-ttl 1 "$S" "$@"; }

kvm put short v --ttl 1 2>/dev/null
kvm put short2 v --ttl 1
kvm put long v --ttl 3600
kvm put plain v
kvm put rearmed v --ttl 2
check_eq "a fresh key with a ttl of 1 reads back" "$(kvm get short)" "v"
check_eq "stats count 5 keys, none expired" \
	"$(kvm stats | grep -E '"(keys|expired_pending)"' | tr -d ' \n')" '"keys":5,"expired_pending":0,'
expiration() { kvm list --prefix "$1" | sed -n 's/.*"expiration": \([0-9]*\).*/\1/p'; }
exp1=$(expiration rearmed)
sleep 1.2
kvm put rearmed v2 --ttl 2 # re-armed: expires 2 s from now, not from the first put
exp2=$(expiration rearmed)
if [ "$exp2" -gt "$exp1" ]; then ok "a re-put re-arms the ttl"; else not_ok "a re-put re-arms the ttl ($exp1 -> $exp2)"; fi
sleep 1.0

check_refused "an expired key is gone from get" 1 "kvctl: key 'short' not found" \
	"$KVCTL" --min-ttl 1 "$S" get short
check_eq "and from list" "$(kvm list | names | tr '\n' ' ')" "long plain rearmed "
check_eq "and from export" "$(kvm export | grep -c short || true)" 0
check_eq "a re-armed key is still there" "$(kvm get rearmed)" "v2"
check_eq "stats count 2 expired, not yet reaped" \
	"$(kvm stats | grep -E '"(keys|expired_pending|tombstones)"' | tr -d ' \n')" \
	'"keys":3,"expired_pending":2,"tombstones":0,'
check_eq "check accepts the store with expired records" "$(kvm check)" "ok: 5 records checked"
check_eq "reap removes the expired keys" "$(kvm reap)" "reaped 2 expired keys"
check_eq "stats show them reaped, as tombstones" \
	"$(kvm stats | grep -E '"(keys|expired_pending|tombstones)"' | tr -d ' \n')" \
	'"keys":3,"expired_pending":0,"tombstones":2,'
check_eq "a second reap finds nothing" "$(kvm reap)" "reaped 0 expired keys"
check_eq "the live keys are untouched" "$(kvm get long)$(kvm get plain)" "vv"
while [ "$(date +%s)" -lt "$exp2" ]; do sleep 0.2; done
check_eq "the re-armed key expires in its turn" "$(kvm reap)" "reaped 1 expired key"
check_eq "check accepts the store after reaping" "$(kvm check)" "ok: 5 records checked"
check_refused "a reaped key is gone" 1 "kvctl: key 'short' not found" \
	"$KVCTL" --min-ttl 1 "$S" get short
kvm put short back
check_eq "a reaped key can be written again" "$(kvm get short)" "back"
finish
