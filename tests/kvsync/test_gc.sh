#!/usr/bin/env bash
# test_gc: the way back by digest comparison.  A peer whose watermark fell
# below the sender's GC horizon is synced by digests (its missed changes
# arrive, keys the sender no longer has are never taken for deleted) and
# ends with the sender's head as watermark; two populated stores meeting for
# the first time exchange only what the other lacks; --full forces the
# comparison.
. "$(dirname "$0")/lib.sh"
: "${GC_TOMBSTONES:?GC_TOMBSTONES must name the gc_tombstones helper}"

A=$WORK/a B=$WORK/b
synced_pair "$A" "$B" g: 50
kvctl "$A" delete g:1
kvctl "$A" delete g:2
kvctl "$A" put g:51 "after the split"
kvctl "$A" put g:3 "changed after the split"
sleep 1.1
check "tombstones older than 1 s are collected" t "$GC_TOMBSTONES" "$A" 1
check_eq "the GC horizon rose past B's watermark" "$(stat_field "$A" gc_horizon)" 52

check_exit "a sync to a peer behind the GC horizon succeeds" 0 \
	kvsync -v --stats "$A" "$B"
check_err "it compares by digests" "by digest comparison"
check_eq "it sends just the two records B lacks" \
	"$(stats_field "$WORK/last.out" "Number of keys transferred")" 2
check_eq "the change B missed arrives" "$(kvctl "$B" get g:3)" "changed after the split"
check_eq "the new key B missed arrives" "$(kvctl "$B" get g:51)" "after the split"
check_eq "a key whose tombstone was collected is not taken for deleted" \
	"$(kvctl "$B" get g:1)" "value 1"
check_exit "the next sync succeeds" 0 kvsync -v --stats "$A" "$B"
check_err "and is incremental again (the watermark is A's head)" "records after 54"
check_eq "and sends nothing" "$(stats_field "$WORK/last.out" "Number of keys transferred")" 0

# Two populated stores meeting for the first time.
C=$WORK/c
for i in $(seq 1 10); do kvctl "$C" put "c:$i" "from c" 2>/dev/null; done
check_exit "a first sync into a populated store succeeds" 0 kvsync -v --stats "$C" "$B"
check_err "it compares by digests" "by digest comparison"
check_eq "and sends only the 10 records B lacks" \
	"$(stats_field "$WORK/last.out" "Number of keys transferred")" 10
check_exit "the way back, also a first contact, succeeds" 0 kvsync -v --stats "$B" "$C"
check_eq "and sends the 51 records C lacks" \
	"$(stats_field "$WORK/last.out" "Number of keys transferred")" 51
check_exit "--full succeeds on converged stores" 0 kvsync -v --full --stats "$B" "$C"
check_err "--full compares by digests" "by digest comparison"
check_eq "and sends nothing" "$(stats_field "$WORK/last.out" "Number of keys transferred")" 0
check "--check finds them converged" kvsync --check "$B" "$C"
finish
