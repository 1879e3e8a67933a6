#!/usr/bin/env bash
# test_attrs: what travels with a record.  Expiration, ttl and metadata
# arrive intact (kvctl list JSON and get --metadata agree on both sides);
# mode, owner and mtime too (seen through kvfs mounts, when kvfs is built);
# a record that expired before the sync is not resurrected on the
# destination; binary values and 512-byte keys cross unchanged.
. "$(dirname "$0")/lib.sh"

A=$WORK/a B=$WORK/b
now=$(date +%s)
kvctl --min-ttl 1 "$A" put attr:ttl "with ttl" --ttl 3600 2>/dev/null
kvctl "$A" put attr:exp "with expiration" --expiration $((now + 7200))
kvctl "$A" put attr:meta "with metadata" --metadata '{"owner":"me","tags":["a","b"],"n":1.5}'
kvctl "$A" put attr:both "both" --ttl 600 --metadata '"just a string"'
kvctl "$A" put attr:plain "plain"
head -c 4096 /dev/urandom >"$WORK/binary"
kvctl "$A" put attr:binary --path "$WORK/binary"
long=$(printf 'L%.0s' $(seq 1 512))
kvctl "$A" put "$long" "long key"

check_exit "the first sync succeeds" 0 kvsync "$A" "$B"
check_eq "list JSON (names, expirations, metadata) is the same on both sides" \
	"$(kvctl "$B" list)" "$(kvctl "$A" list)"
for k in attr:meta attr:both attr:plain; do
	check_eq "get --metadata of $k is the same on both sides" \
		"$(kvctl "$B" get "$k" --metadata)" "$(kvctl "$A" get "$k" --metadata)"
done
check_eq "a binary value crosses unchanged" "$(kvctl "$B" get attr:binary | cksum)" \
	"$(cksum <"$WORK/binary")"
check_eq "a 512-byte key crosses" "$(kvctl "$B" get "$long")" "long key"

# Expired records are not resurrected: written with a 1 s ttl, synced later.
kvctl --min-ttl 1 "$A" put attr:short "synced at once, expires soon after" --ttl 1
kvsync "$A" "$B"
kvctl --min-ttl 1 "$A" put attr:late "expires before the sync" --ttl 1
sleep 2.2
check_exit "a sync after the expiry succeeds" 0 kvsync "$A" "$B"
check "a record that expired before the sync does not appear on the destination" \
	bash -c '! "$0" "$1" get attr:late' "$KVCTL" "$B"
check "it is not listed there either" bash -c '! "$0" "$1" list | grep -q attr:late' "$KVCTL" "$B"
check "a record that expired after it arrived is gone on the destination too" \
	bash -c '! "$0" "$1" get attr:short' "$KVCTL" "$B"
check_exit "a digest sync (--full) after the expiry succeeds" 0 kvsync --full "$A" "$WORK/c"
check "nor does a digest sync resurrect it" \
	bash -c '! "$0" "$1" get attr:late' "$KVCTL" "$WORK/c"

if kvfs_usable; then
	if mount_kvfs "$A" "$WORK/ma" && mount_kvfs "$B" "$WORK/mb"; then
		chmod 0640 "$WORK/ma/attr/plain"
		chown 1234:5678 "$WORK/ma/attr/plain"
		touch -d '2001-02-03 04:05:06.123456789' "$WORK/ma/attr/plain"
		sleep 0.2
		check_exit "a sync after chmod, chown and touch succeeds" 0 kvsync "$A" "$B"
		want=$(stat -c '%a %u %g %y' "$WORK/ma/attr/plain")
		check "mode, owner and mtime arrive intact" \
			within 3000 bash -c '[ "$(stat -c "%a %u %g %y" "$0")" = "$1" ]' \
			"$WORK/mb/attr/plain" "$want"
		check_eq "the ttl arrives intact (user.kv.ttl)" \
			"$(getfattr --only-values -n user.kv.ttl "$WORK/mb/attr/ttl" 2>/dev/null)" 3600
		check_eq "the metadata reads the same through the mount" \
			"$(getfattr --only-values -n user.kv.metadata "$WORK/mb/attr/meta" 2>/dev/null)" \
			"$(getfattr --only-values -n user.kv.metadata "$WORK/ma/attr/meta" 2>/dev/null)"
	else
		not_ok "kvfs mounts both stores"
	fi
else
	echo "# kvfs not built or FUSE missing: mode, owner and mtime checks skipped"
fi
finish
