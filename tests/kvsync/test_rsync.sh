#!/usr/bin/env bash
# test_rsync: kvsync takes rsync's habits.  -a, -r, -t, -X and their long
# forms are accepted and change nothing (-v says so once), -i gives the
# per-key lines, short options combine (-avz, -aP, -ai); --stats prints
# rsync's summary lines with its number format, counting the real bytes on
# the connection; -z over a daemon (with and without a token) and over a
# remote shell gives the same stores as a sync without it, in fewer bytes
# on compressible values; --bwlimit holds a push and a pull back, a pull
# from a daemon too (a loose lower bound on the time taken, no upper one);
# a hostile zstd stream to either end is a clean protocol error.
. "$(dirname "$0")/lib.sh"
. "$SYNC_DIR/frames.sh"

RSH=$SYNC_DIR/fake-rsh.sh
A=$WORK/a
# 40 keys of 2000 compressible bytes: the byte counts pass a thousand.
for i in $(seq 1 40); do
	kvctl "$A" put "k$i" "$(printf 'value %04d ' "$i"; head -c 1990 /dev/zero | tr '\0' x)" \
		2>/dev/null
done
kvctl "$A" put gone x 2>/dev/null
kvctl "$A" delete gone 2>/dev/null

# ---- rsync's no-op options and -i
check_exit "-a -r -t -X are accepted" 0 kvsync -a -r -t -X "$A" "$WORK/n1"
check_eq "and print nothing without -v" "$(cat "$WORK/last.err")" "kvsync: created store $WORK/n1"
same_export "the sync is made as without them" "$A" "$WORK/n1"
check_exit "--archive --recursive --times --xattrs are accepted" 0 \
	kvsync --archive --recursive --times --xattrs "$A" "$WORK/n1"
check_exit "-av is accepted" 0 kvsync -av "$A" "$WORK/n2"
check_eq "-v notes once that -a has no effect" \
	"$(grep -c 'has no effect' "$WORK/last.err")" 1
check_err "in those words" \
	"kvsync: -a has no effect: every key, ttl and metadata is always synced"
check_exit "-artX -v is accepted" 0 kvsync -artX -v "$A" "$WORK/n2"
check_err "the note names them all, once" \
	"kvsync: -a, -r, -t, -X have no effect: every key, ttl and metadata is always synced"
check_exit "-ai is accepted" 0 kvsync -ai "$A" "$WORK/n3"
check_eq "-i prints a line per key, as -v" "$(grep -c '^+ k' "$WORK/last.out")" 40
check "and the deletion as -v does" grep -qx -- '- gone' "$WORK/last.out"
check_eq "-i alone prints no note" "$(grep -c 'has no effect' "$WORK/last.err")" 0
check_eq "nor -v's summary line" "$(grep -c 'SRC -> DST' "$WORK/last.err")" 0
check_exit "--itemize-changes is -i" 0 kvsync --itemize-changes "$A" "$WORK/n4"
check_eq "with the same lines" "$(grep -c '^+ k' "$WORK/last.out")" 40
check_exit "-aP is accepted" 0 kvsync -aP "$A" "$WORK/n5"
check_exit "-avz is accepted" 0 kvsync -avz "$A" "$WORK/n6"
same_export "-avz makes the same store" "$A" "$WORK/n6"

# ---- --stats in rsync's lines
check_exit "--stats succeeds" 0 kvsync --stats "$A" "$WORK/s1"
cp "$WORK/last.out" "$WORK/stats.plain"
for line in "Number of keys transferred: 41" "Number of keys applied: 41" \
	"Number of keys ignored: 0" "Number of deleted keys: 1"; do
	check "--stats says '$line'" grep -qx "$line" "$WORK/stats.plain"
done
check "--stats: Total transferred size with rsync's commas" \
	grep -qE '^Total transferred size: [0-9]{1,3}(,[0-9]{3})+ bytes$' "$WORK/stats.plain"
check "--stats: Literal data" grep -qE '^Literal data: [0-9,]+ bytes$' "$WORK/stats.plain"
check "--stats: Total bytes sent, with commas" \
	grep -qE '^Total bytes sent: [0-9]{1,3}(,[0-9]{3})+$' "$WORK/stats.plain"
check "--stats: Total bytes received" grep -qE '^Total bytes received: [0-9,]+$' "$WORK/stats.plain"
check "--stats: rsync's sent/received/bytes per second line" \
	grep -qE '^sent [0-9,]+ bytes  received [0-9,]+ bytes  [0-9,]+\.[0-9]{2} bytes/sec$' \
	"$WORK/stats.plain"
check "--stats: rsync's total size and speedup line" \
	grep -qE '^total size is [0-9,]+  speedup is [0-9,]+\.[0-9]{2}$' "$WORK/stats.plain"
sent=$(stats_field "$WORK/stats.plain" "Total bytes sent")
received=$(stats_field "$WORK/stats.plain" "Total bytes received")
check_eq "the summary line repeats both byte counts" \
	"$(sed -n 's/^sent \([0-9,]*\) bytes  received \([0-9,]*\) bytes .*/\1 \2/p' "$WORK/stats.plain" | tr -d ,)" \
	"$sent $received"
check "more than the values' 80,000 bytes went on the wire uncompressed" test "$sent" -gt 80000
kvctl "$WORK/other" put k1 other 2>/dev/null
check_exit "--check --stats counts differing keys" 1 kvsync --check --stats "$A" "$WORK/other"
check "as 'Number of keys differing'" grep -qx "Number of keys differing: 40" "$WORK/last.out"

# ---- -z: the same stores, fewer bytes
port=$(free_port)
serve srv "$WORK/srv" --listen "127.0.0.1:$port"
check_exit "-z push to a daemon succeeds" 0 kvsync -z --stats "$A" "kvsync://127.0.0.1:$port"
zsent=$(stats_field "$WORK/last.out" "Total bytes sent")
same_export "the daemon's store holds the namespace" "$A" "$WORK/srv"
check "and the push sent fewer bytes than uncompressed ($zsent < $sent)" test "$zsent" -lt "$sent"
check "speedup is above 1 with -z on compressible values" \
	grep -qE '^total size is [0-9,]+  speedup is ([2-9]|[1-9][0-9,]+)\.[0-9]{2}$' "$WORK/last.out"
check_exit "a pull from the daemon without -z" 0 kvsync --stats "kvsync://127.0.0.1:$port" "$WORK/p1"
plain_in=$(stats_field "$WORK/last.out" "Total bytes received")
check_exit "a pull from the daemon with -z" 0 kvsync -z --stats "kvsync://127.0.0.1:$port" "$WORK/p2"
z_in=$(stats_field "$WORK/last.out" "Total bytes received")
check "receives fewer bytes ($z_in < $plain_in)" test "$z_in" -lt "$plain_in"
kvctl "$WORK/p1" export >"$WORK/p1.export"
kvctl "$WORK/p2" export >"$WORK/p2.export"
check "and makes a byte-identical store" cmp -s "$WORK/p1.export" "$WORK/p2.export"
same_export "which holds the namespace" "$A" "$WORK/p2"
check_exit "-z --check against the daemon finds it converged" 0 \
	kvsync -z --check "$A" "kvsync://127.0.0.1:$port"

printf 'sesame\n' >"$WORK/token"
tport=$(free_port)
serve tsrv "$WORK/tsrv" --listen "127.0.0.1:$tport" --token-file "$WORK/token"
check_exit "-z push to a daemon holding a token" 0 \
	kvsync -z --token-file "$WORK/token" "$A" "kvsync://127.0.0.1:$tport"
check_exit "-z pull back from it" 0 \
	kvsync -z --token-file "$WORK/token" "kvsync://127.0.0.1:$tport" "$WORK/tp"
same_export "both hold the namespace" "$A" "$WORK/tsrv" "$WORK/tp"

check_exit "-z push through the remote shell" 0 \
	kvsync -z -e "$RSH" --kvsync-path "$KVSYNC" --stats "$A" "host:$WORK/r1"
check "sends fewer bytes than uncompressed" \
	test "$(stats_field "$WORK/last.out" "Total bytes sent")" -lt "$sent"
check_exit "-z pull through the remote shell" 0 \
	kvsync -z -e "$RSH" --kvsync-path "$KVSYNC" "host:$WORK/r1" "$WORK/r2"
check_exit "the same pull without -z" 0 \
	kvsync -e "$RSH" --kvsync-path "$KVSYNC" "host:$WORK/r1" "$WORK/r3"
kvctl "$WORK/r2" export >"$WORK/r2.export"
kvctl "$WORK/r3" export >"$WORK/r3.export"
check "-z and plain pulls make byte-identical stores" cmp -s "$WORK/r2.export" "$WORK/r3.export"
same_export "holding the namespace" "$A" "$WORK/r2"

# A kvsync that does not know -z (its HELLO lacks the flag): a clear refusal.
printf '#!/bin/sh\nexec "%s" "$@"\n' "$RSH" >"$WORK/old-rsh"
{ magic; { be 4 1; be 4 1; zeros 32; } | frame 1; } >"$WORK/old-server.bin"
printf '#!/bin/sh\ncat "%s"\nsleep 1\n' "$WORK/old-server.bin" >"$WORK/old-rsh"
chmod +x "$WORK/old-rsh"
check_exit "-z against a server that does not know it is refused (exit 3)" 3 \
	kvsync -z -e "$WORK/old-rsh" "$A" "host:$WORK/x"
check_err "saying so" "the server's kvsync does not know -z (compression): drop -z, or upgrade it"

# ---- hostile zstd streams, to the server and to the client
STORE=$WORK/srv
# a HELLO asking for -z, then 1 GiB of zeros compressed to some 33 KB
{ magic; { be 4 1; be 4 4; zeros 32; } | frame 1; head -c 1G /dev/zero | zstd -q -c; } \
	>"$WORK/bomb.bin"
# the same with a frame that asks for a 2 GiB window
{ magic; { be 4 1; be 4 4; zeros 32; } | frame 1; head -c 100K /dev/urandom | zstd -q --long=31 -c; } \
	>"$WORK/window.bin"
# garbage where the zstd stream should be
{ magic; { be 4 1; be 4 4; zeros 32; } | frame 1; printf 'this is not zstd at all'; } \
	>"$WORK/notzstd.bin"
snapshot "$STORE" "$WORK/before"
for b in bomb window notzstd; do
	check_exit "--server given a $b stream after -z: protocol error (exit 3)" 3 \
		sh -c "'$KVSYNC' --server '$STORE' <'$WORK/$b.bin' >/dev/null"
	check_err "it says protocol error" "protocol error"
	[ "$b" != window ] || check_err "a 2 GiB window is refused, not allocated" "too much memory"
done
snapshot "$STORE" "$WORK/after"
check "the store is unchanged" cmp -s "$WORK/before" "$WORK/after"
check_exit "the daemon still serves after a bomb" 0 \
	kvsync -z --check "$A" "kvsync://127.0.0.1:$port"

# To the client: a "server" that agrees to -z and sends a bomb.
for b in bomb window; do
	{ magic; { be 4 1; be 4 5; zeros 32; } | frame 1; } >"$WORK/srv-$b.bin"
	tail -c +$((8 + 45 + 1)) "$WORK/$b.bin" >>"$WORK/srv-$b.bin"
	printf '#!/bin/sh\ncat "%s"\nsleep 2\n' "$WORK/srv-$b.bin" >"$WORK/$b-rsh"
	chmod +x "$WORK/$b-rsh"
	check_exit "a client sent a $b stream: protocol error (exit 3)" 3 \
		kvsync -z -e "$WORK/$b-rsh" "host:/x" "$WORK/bombed-$b"
	check_err "it says protocol error" "protocol error"
	check "and no local store was made" test ! -e "$WORK/bombed-$b"
done

# ---- --bwlimit
check_exit "--bwlimit takes rsync's forms" 0 kvsync --bwlimit 1.5M "$A" "$WORK/b1"
check_exit "... a 1000-based suffix" 0 kvsync --bwlimit 100KB "$A" "$WORK/b1"
check_exit "... and 0, no limit" 0 kvsync --bwlimit 0 "$A" "$WORK/b1"
check_exit "a bad rate is a usage error (exit 2)" 2 kvsync --bwlimit 5X "$A" "$WORK/b1"
check_err "naming the option" "--bwlimit takes a rate"
check_exit "a negative rate too" 2 kvsync --bwlimit -1 "$A" "$WORK/b1"
# 2 MiB of random values (zstd cannot shrink them) at 512 KiB/s: 3 s at
# least (4 s less the first tenth of a second's bucket, and slack).
B=$WORK/big
for i in $(seq 1 16); do
	head -c 131072 /dev/urandom >"$WORK/v"
	kvctl "$B" put "big$i" --path "$WORK/v" 2>/dev/null
done
lport=$(free_port)
serve lsrv "$WORK/lsrv" --listen "127.0.0.1:$lport"
start=$(date +%s%3N)
check_exit "a push of 2 MiB at --bwlimit 512 to a daemon succeeds" 0 \
	kvsync --bwlimit 512 "$B" "kvsync://127.0.0.1:$lport"
took=$(($(date +%s%3N) - start))
check "and takes 3 s at least (took $took ms)" test "$took" -ge 3000
same_export "the daemon holds it all" "$B" "$WORK/lsrv"
start=$(date +%s%3N)
check_exit "a pull of 2 MiB at --bwlimit 512 through the remote shell succeeds" 0 \
	kvsync --bwlimit 512 -e "$RSH" --kvsync-path "$KVSYNC" "host:$B" "$WORK/bpull"
took=$(($(date +%s%3N) - start))
check "and takes 3 s at least: the far end is limited too (took $took ms)" test "$took" -ge 3000
same_export "the pulled store holds it all" "$B" "$WORK/bpull"
# A daemon is given no limit: this side reads at most the rate, and TCP's
# flow control holds the daemon back.
start=$(date +%s%3N)
check_exit "a pull of 2 MiB at --bwlimit 512 from a daemon succeeds" 0 \
	kvsync --bwlimit 512 "kvsync://127.0.0.1:$lport" "$WORK/dpull"
took=$(($(date +%s%3N) - start))
check "and takes 3 s at least: this side reads at the rate (took $took ms)" \
	test "$took" -ge 3000
same_export "the pulled store holds it all" "$B" "$WORK/dpull"
start=$(date +%s%3N)
check_exit "the same pull with -z succeeds" 0 \
	kvsync -z --bwlimit 512 "kvsync://127.0.0.1:$lport" "$WORK/dpullz"
took=$(($(date +%s%3N) - start))
check "and takes 3 s at least: the compressed bytes are counted (took $took ms)" \
	test "$took" -ge 3000
same_export "and the store is complete" "$B" "$WORK/dpullz"
check_exit "the same pull without --bwlimit succeeds" 0 \
	kvsync "kvsync://127.0.0.1:$lport" "$WORK/dpull0"
same_export "and the store is complete" "$B" "$WORK/dpull0"
finish
