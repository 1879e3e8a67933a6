#!/usr/bin/env bash
# test_growth: kvsync --check while another process grows the map of the
# stores it compares.  Through the grow_map shim kvsync opens the stores
# with maps no bigger than their data, and at the Nth cursor that kvsync
# and its forked peer open (a walk of a key range, inside a read
# transaction) a kvctl writes 2 MiB into both
# stores, outgrowing those maps: kvsync must adopt the new size, which
# waits for its transactions to end.  For every N the check must finish
# (no thread may hold a read transaction while it begins another: that
# waits forever) and report the differences the stores have (exit 1).
. "$(dirname "$0")/lib.sh"
: "${GROW_MAP:?GROW_MAP must name the grow_map shim}"

A=$WORK/a
B=$WORK/b
for i in $(seq 20); do
	kvctl "$A" put "both$i" "v$i"
done
kvsync "$A" "$B"
for i in $(seq 5); do
	kvctl "$A" put "onlya$i" "a$i"
	kvctl "$B" put "onlyb$i" "b$i"
done
head -c $((2 << 20)) /dev/urandom >"$WORK/grow"

for n in $(seq 10); do
	grow="env -u LD_PRELOAD '$KVCTL' '$A' put grow$n --path '$WORK/grow' &&"
	grow+=" env -u LD_PRELOAD '$KVCTL' '$B' put grow$n --path '$WORK/grow' &&"
	grow+=" echo grown >>'$WORK/mark'"
	check_exit "--check finishes while the map grows at cursor $n (exit 1: differences)" 1 \
		env LD_PRELOAD="$GROW_MAP" GROW_MAP_SMALL=65536 GROW_MAP_AT="$n" \
		GROW_MAP_COUNT="$WORK/count$n" \
		GROW_MAP_CMD="$grow" ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
		timeout -k 5 30 "$KVSYNC" --check "$A" "$B"
	check "--check lists a differing key (cursor $n)" grep -q onlya1 "$WORK/last.out"
done
check "the map did grow during the checks" test -s "$WORK/mark"
check "store A is clean" kvctl "$A" check
check "store B is clean" kvctl "$B" check
finish
