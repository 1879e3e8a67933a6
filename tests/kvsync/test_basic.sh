#!/usr/bin/env bash
# test_basic: the command line.  A first sync copies everything, a second
# sends no record at all, a third sends only what changed; -n applies
# nothing and sets no watermark; -v names each key; --check reports
# differences with exit 1; --stats counts tombstones without -v; kvctl
# stats lists the peers a store has received from, and up to where; usage
# errors exit 2, with getopt's messages under kvsync's name; a --max-skew
# past any clock is no bound; a local sync's error is printed once; a kvfs
# mountpoint works where a STORE is expected.
. "$(dirname "$0")/lib.sh"

A=$WORK/a B=$WORK/b
put_values "$A" key: 20
kvctl "$A" put gone soon
kvctl "$A" delete gone

check_exit "a first sync succeeds" 0 kvsync --stats "$A" "$B"
check_eq "it sends every record, the tombstone included" \
	"$(stats_field "$WORK/last.out" "Number of keys transferred")" 21
check_eq "and applies them" "$(stats_field "$WORK/last.out" "Number of keys applied")" 21
check_eq "--stats counts the tombstone among them without -v" \
	"$(stats_field "$WORK/last.out" "Number of deleted keys")" 1
check "and prints no per-key line without -v" bash -c '! grep -q "^[+=-] " "$0"' "$WORK/last.out"
check_err "it says it created the destination store" "created store"

check_exit "a sync with nothing new succeeds" 0 kvsync --stats "$A" "$B"
check_eq "it sends no record" "$(stats_field "$WORK/last.out" "Number of keys transferred")" 0
check_eq "and applies none" "$(stats_field "$WORK/last.out" "Number of keys applied")" 0

kvctl "$A" put key:3 changed
kvctl "$A" put key:21 new
check_exit "a sync after two changes succeeds" 0 kvsync --stats -v "$A" "$B"
check_eq "it sends exactly the two changed records" \
	"$(stats_field "$WORK/last.out" "Number of keys transferred")" 2
check_eq "-v prints a '+ KEY' line per applied record" \
	"$(grep '^[+=-] ' "$WORK/last.out")" "$(printf '+ key:3\n+ key:21')"
check_err "-v sums the direction up on stderr" "SRC -> DST: 2 records after"
check_eq "the change arrived" "$(kvctl "$B" get key:3)" changed
a_node=$(kvctl "$A" stats | sed -n 's/^  "node_id": "\([0-9a-f]*\)",$/\1/p')
check_eq "kvctl stats of DST lists SRC as a peer, at SRC's feed head" \
	"$(kvctl "$B" stats | grep -c "\"node_id\": \"$a_node\", .*\"watermark\": $(stat_field "$A" feed_head) ")" 1
check_eq "and SRC, which received nothing, lists no peer" \
	"$(kvctl "$A" stats | grep -c '"peers": \[\]')" 1

# A record the destination already has is reported as ignored.
check_exit "a digest sync (--full) succeeds" 0 kvsync --full -v --stats "$B" "$A"
check_eq "--full sends nothing when the other side has everything" \
	"$(stats_field "$WORK/last.out" "Number of keys transferred")" 0

kvctl "$A" delete key:1
kvctl "$A" put key:2 dry
head_before=$(stat_field "$B" feed_head)
snapshot "$B" "$WORK/before"
check_exit "a dry run succeeds" 0 kvsync -n -v --stats "$A" "$B"
check_eq "-n -v names what would be applied (a deletion with '-')" \
	"$(grep '^[+=-] ' "$WORK/last.out" | sort)" "$(printf '+ key:2\n- key:1')"
snapshot "$B" "$WORK/after"
check "-n changes nothing on the destination" cmp -s "$WORK/before" "$WORK/after"
check_exit "a real sync after the dry run succeeds" 0 kvsync --stats "$A" "$B"
check_eq "-n set no watermark: the real sync still sends both changes" \
	"$(stats_field "$WORK/last.out" "Number of keys transferred")" 2
[ "$(stat_field "$B" feed_head)" -gt "$head_before" ] && ok "the real sync advanced the feed" ||
	not_ok "the real sync advanced the feed"

check_exit "--check exits 0 on converged stores" 0 kvsync --check "$A" "$B"
kvctl "$B" put only-b x
kvctl "$A" put key:5 newer-on-a
check_exit "--check exits 1 when they differ" 1 kvsync --check "$A" "$B"
check_eq "--check prints one line per differing key" "$(sort "$WORK/last.out")" \
	"$(printf '%s\n' '* key:5 (SRC: newer, DST: older)' '* only-b (SRC: absent, DST: live)')"
check_exit "--both succeeds" 0 kvsync --both "$A" "$B"
check_exit "--check exits 0 after --both" 0 kvsync --check "$A" "$B"

# -P draws on a terminal only.
for i in $(seq 1 300); do echo "{\"key\":\"p:$i\",\"value\":\"$i\"}"; done |
	sed '1s/^/[/; $!s/$/,/; $s/$/]/' >"$WORK/bulk.json"
kvctl "$A" bulk put "$WORK/bulk.json" >/dev/null
check_exit "-P with stderr not a terminal succeeds" 0 kvsync -P "$A" "$WORK/p1"
check "and draws nothing" bash -c '! grep -q records "$0"' "$WORK/last.err"
if command -v script >/dev/null; then
	t script -qec "'$KVSYNC' -P '$A' '$WORK/p2'" /dev/null >"$WORK/tty.out" 2>&1 || true
	check "-P on a terminal draws a progress line" grep -qE 'SRC -> DST: [0-9.]+ [KMGTP]?i?B [0-9]+(/~?[0-9]+)? records' "$WORK/tty.out"
	same_export "and the sync behind it completes" "$A" "$WORK/p2"
fi

check_exit "no arguments is a usage error" 2 kvsync
check_exit "one argument is a usage error" 2 kvsync "$A"
check_exit "an unknown option is a usage error" 2 kvsync --frobnicate "$A" "$B"
check_exit "two remote sides is a usage error" 2 kvsync h1:/x h2:/y
check_exit "--check with --watch is a usage error" 2 kvsync --check --watch "$A" "$B"
check_exit "a bad --max-skew is a usage error" 2 kvsync --max-skew soon "$A" "$B"
check_exit "syncing a store with itself is refused" 2 kvsync "$A" "$A"
check_err "and says why" "same store"
check_eq "once: the forked peer leaves the message to the client" \
	"$(grep -c "same store" "$WORK/last.err")" 1
check_exit "a negative --max-skew is a usage error, even after a blank" 2 \
	kvsync --max-skew " -1" "$A" "$B"
kvctl "$A" put skew:recent "just written"
check_exit "a --max-skew beyond any clock (2^64 - 10^9 ms) is no bound at all" 0 \
	kvsync --max-skew 18446744072709551615 "$A" "$B"
check_eq "and the record just written arrives" "$(kvctl "$B" get skew:recent)" "just written"
check_exit "an unknown option of serve is a usage error" 2 kvsync serve --frobnicate "$B"
check_err "named as kvsync serve's" "kvsync serve: unrecognized option '--frobnicate'"
check_exit "a missing source is a store error" 4 kvsync "$WORK/missing" "$B"
check_err "and names the store" "no such store"
check_exit "--version succeeds" 0 kvsync --version
check_exit "-V succeeds" 0 kvsync -V
check "and prints the version" grep -q '^kvsync [0-9]' "$WORK/last.out"
check_exit "--help succeeds" 0 kvsync --help

# A mountpoint names its store (user.kv.store on the mount root).
if kvfs_usable; then
	if mount_kvfs "$B" "$WORK/mnt"; then
		kvctl "$A" put via-mount yes
		check_exit "a kvfs mountpoint is accepted as DST" 0 kvsync "$A" "$WORK/mnt"
		check "the record is visible in the mount" \
			within 3000 grep -qx yes "$WORK/mnt/via-mount"
		check_exit "a kvfs mountpoint is accepted as SRC" 0 kvsync --check "$WORK/mnt" "$A"
	else
		not_ok "kvfs mounts the destination store"
	fi
else
	echo "# kvfs not built or FUSE missing: mountpoint checks skipped"
fi
finish
