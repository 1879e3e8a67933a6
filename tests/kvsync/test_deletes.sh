#!/usr/bin/env bash
# test_deletes: deletes travel as tombstones and never come back.  A stale
# copy synced toward the deleting store, by feed or by digest comparison,
# loses to the tombstone; a write older than the delete made elsewhere
# loses too; only a write made after the delete brings the key back.
. "$(dirname "$0")/lib.sh"

A=$WORK/a B=$WORK/b C=$WORK/c
all_syncs() {
	kvsync --both "$A" "$B" 2>>"$WORK/kvsync.log"
	kvsync --both "$B" "$C" 2>>"$WORK/kvsync.log"
	kvsync --both "$C" "$A" 2>>"$WORK/kvsync.log"
	kvsync --both "$A" "$B" 2>>"$WORK/kvsync.log"
}
absent_everywhere() {
	local s
	for s in "$A" "$B" "$C"; do
		if kvctl "$s" get "$1" >/dev/null 2>&1; then return 1; fi
		if kvctl "$s" list | grep -q "\"$1\""; then return 1; fi
	done
}

kvctl "$A" put doomed one 2>/dev/null
kvctl "$A" put keep kept
kvctl "$B" put other x 2>/dev/null
kvctl "$C" put third y 2>/dev/null
all_syncs
check "the key reached every store" kvctl "$C" get doomed

kvctl "$A" delete doomed
# The stale copies travel first, toward the store that deleted.
kvsync "$C" "$A" 2>>"$WORK/kvsync.log"
kvsync "$B" "$A" 2>>"$WORK/kvsync.log"
kvsync --full "$C" "$A" 2>>"$WORK/kvsync.log"
check "stale copies synced to A (by feed and by digest) do not undo its delete" \
	bash -c '! "$0" "$1" get doomed 2>/dev/null' "$KVCTL" "$A"
kvsync --both "$B" "$C" 2>>"$WORK/kvsync.log"
all_syncs
kvsync --full --both "$C" "$B" 2>>"$WORK/kvsync.log"
check "after syncs in every direction the key is absent everywhere" absent_everywhere doomed
check "the untouched key is still everywhere" bash -c '"$0" "$1" get keep >/dev/null' "$KVCTL" "$C"

# A write older than the delete, made where the delete had not arrived.
kvctl "$B" put keep early
sleep 0.01
kvctl "$A" delete keep
all_syncs
check "a write made elsewhere before the delete loses to it" absent_everywhere keep

# A write after the delete wins.
sleep 0.01
kvctl "$C" put doomed two
all_syncs
check_eq "a write made after the delete brings the key back everywhere" \
	"$(kvctl "$A" get doomed)/$(kvctl "$B" get doomed)" "two/two"

# A delete reaches a store that never held the key, and passes on from it.
D=$WORK/d
kvctl "$D" put d-only z 2>/dev/null
kvctl "$A" put chain-key v
kvsync "$A" "$B" 2>>"$WORK/kvsync.log"
kvctl "$B" delete chain-key
kvsync "$B" "$C" 2>>"$WORK/kvsync.log"   # C learns of the key only as deleted
kvsync "$C" "$D" 2>>"$WORK/kvsync.log"
kvsync "$A" "$D" 2>>"$WORK/kvsync.log"   # the old copy arrives after the tombstone
check "a tombstone relayed through a store that never held the key still wins" \
	bash -c '! "$0" "$1" get chain-key 2>/dev/null' "$KVCTL" "$D"

all_syncs
kvsync --both "$D" "$A" 2>>"$WORK/kvsync.log"
all_syncs
check "the relayed delete wins everywhere once all have synced" absent_everywhere chain-key
same_export "A, B, C and D export the same namespace" "$A" "$B" "$C" "$D"
check "--check finds A and C converged" kvsync --check "$A" "$C"
finish
