#!/usr/bin/env bash
# test_abuse: `kvsync serve` under hostile clients, on loopback.
#  - A slowloris of 64 connections from one address, each greeting one byte
#    a second: a client with the token syncs at once beside it, and the
#    slow handshakes are cut at the 10 s deadline (--login-grace-time).
#  - A slowloris of 100 connections from 50 addresses: new handshakes are
#    dropped at random (--max-startups); a client with the token that is
#    dropped is told "busy, try again later" (exit 3, never the exit 5 of
#    an auth failure) and gets through by retrying.
#  - A client that authenticates, asks for a pull and stops reading: while
#    it stalls the daemon's sender holds no read transaction (LMDB's reader
#    table), writers carry on, the session limit refuses others as busy;
#    after --timeout the daemon drops it and the place is free again.  The
#    same for a client that stops sending mid-push, or never asks.
# The numbers (how long the good client waited, how many tries) are
# printed as comments: they are reported, never asserted.
. "$(dirname "$0")/lib.sh"
: "${SLOWLORIS:?SLOWLORIS must name the slowloris helper}"
: "${STALL_CLIENT:?STALL_CLIENT must name the stall_client helper}"

A=$WORK/a SRV=$WORK/srv
for i in $(seq 1 20); do kvctl "$A" put "k:$i" "value $i"; done
printf 'abuse test token\n' >"$WORK/token"
chmod 600 "$WORK/token"

# wait_pid PID: wait (bounded) for a background helper to end.
wait_pid() {
	timeout 60 tail --pid="$1" -f /dev/null
}

# loris_field FILE NAME: a figure of the slowloris helper's summary.
loris_field() {
	awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$1"
}

port=$(free_port)
check "the daemon starts with its default limits" \
	serve srv "$SRV" --listen "127.0.0.1:$port" --token-file "$WORK/token"
srv_pid=$SERVE_PID
URL=kvsync://127.0.0.1:$port

# --- 64 slow connections from one address (127.0.1.1) -------------------
bg loris1 "$SLOWLORIS" "$port" 64 1 14
loris=$BG_PID
check "64 slow connections are opened" within 10000 grep -q ready "$WORK/loris1.out"
t0=$(date +%s%3N)
check_exit "a client with the token syncs beside them (exit 0)" 0 \
	kvsync --token-file "$WORK/token" "$A" "$URL"
t1=$(date +%s%3N)
echo "# the good client took $((t1 - t0)) ms beside 64 slow connections from one address"
same_export "the daemon's store holds the client's namespace" "$A" "$SRV"
check "the slowloris ends" wait_pid "$loris"
echo "# slowloris (64 from one address, 14 s): $(cat "$WORK/loris1.out" | tail -n 1)"
check "the daemon cut the slow handshakes at the 10 s deadline" \
	grep -q "did not finish the handshake within 10000 ms" "$WORK/srv.log"
check "the slowloris saw its handshakes cut" \
	test "$(loris_field "$WORK/loris1.out" cut)" -gt 0
check "and its connections past 5 from one address refused as busy" \
	test "$(loris_field "$WORK/loris1.out" busy)" -gt 0
check "no slow handshake lived much past the deadline (under 20 s)" \
	test "$(loris_field "$WORK/loris1.out" longest_cut_ms)" -lt 20000

# --- 100 slow connections from 50 addresses -----------------------------
kvctl "$A" put k:late "written during the second attack"
bg loris2 "$SLOWLORIS" "$port" 100 50 60
loris=$BG_PID
check "100 slow connections from 50 addresses are opened" \
	within 10000 grep -q ready "$WORK/loris2.out"
sleep 2 # let them fill the handshake places
# Five syncs one after the other, each retrying while told it is busy.
tries=0 busy=0 rc=0 other="" worst=0
for round in 1 2 3 4 5; do
	kvctl "$A" put k:late "written during the second attack, round $round"
	t0=$(date +%s%3N)
	for _ in $(seq 300); do
		tries=$((tries + 1))
		rc=0
		t "$KVSYNC" --token-file "$WORK/token" "$A" "$URL" 2>"$WORK/try.err" || rc=$?
		[ "$rc" -eq 0 ] && break
		if [ "$rc" -eq 3 ] && grep -q "busy, try again later" "$WORK/try.err"; then
			busy=$((busy + 1))
			sleep 0.1
			continue
		fi
		other="exit $rc: $(head -n 1 "$WORK/try.err")"
		break
	done
	t1=$(date +%s%3N)
	[ $((t1 - t0)) -gt "$worst" ] && worst=$((t1 - t0))
	[ "$rc" -eq 0 ] && [ -z "$other" ] || break
done
echo "# 5 good syncs took $tries tries ($busy refused as busy); the longest waited $worst ms"
check_eq "every refusal of the good client was 'busy' with exit 3" "$other" ""
check_eq "a client with the token gets through by retrying, five times" "$rc" 0
check "its last write reached the daemon" \
	bash -c '[ "$("$0" "$1" get k:late)" = "written during the second attack, round 5" ]' \
	"$KVCTL" "$SRV"
kill -TERM "$loris"
wait_pid "$loris" || true
echo "# slowloris (100 from 50 addresses): $(tail -n 1 "$WORK/loris2.out")"
kill -TERM "$srv_pid"
wait_pid "$srv_pid" || true

# --- a client that stops reading ---------------------------------------
SRV2=$WORK/srv2
head -c 1048576 /dev/urandom >"$WORK/mib"
for i in $(seq 1 24); do kvctl "$SRV2" put "big:$i" --path "$WORK/mib"; done
port2=$(free_port)
check "a daemon with --timeout 3 --max-sessions 1 starts" \
	serve srv2 "$SRV2" --listen "127.0.0.1:$port2" --token-file "$WORK/token" \
	--timeout 3 --max-sessions 1
URL2=kvsync://127.0.0.1:$port2
bg stall "$STALL_CLIENT" 127.0.0.1 "$port2" "$WORK/token" pull 120
stall=$BG_PID
check "a client authenticates, asks for a pull and stops reading" \
	within 10000 grep -q stalled "$WORK/stall.out"
# The daemon's end fills up: more than a MiB waits in its send queue.
sendq() {
	ss -tnH state established "( sport = :$port2 )" | awk '$2 > 1048576 { f = 1 } END { exit !f }'
}
check "the daemon's sender is blocked on the stalled client" within 10000 sendq
# LMDB's reader table: a reader holding a snapshot shows its txnid.
no_snapshot() {
	local i
	for i in 1 2 3 4 5; do
		{ mdb_stat -r "$SRV2" || true; } | awk 'NR > 2 && $3 ~ /^[0-9]+$/ { f = 1 } END { exit f }' ||
			return 1
		sleep 0.1
	done
}
if command -v mdb_stat >/dev/null; then
	check "while blocked, the sender holds no read transaction" no_snapshot
fi
check_exit "a writer is not held up by it" 0 kvctl "$SRV2" put during:stall "still writable"
check_exit "with its one session taken, the next client is refused as busy (exit 3)" 3 \
	kvsync --token-file "$WORK/token" "$URL2" "$WORK/pulled"
check_err "and told to try again later" "busy, try again later"
check "the daemon drops the stalled client after its --timeout" \
	within 20000 grep -q "stopped answering (timed out)" "$WORK/srv2.log"
check "then the place is free: a client pulls the store" \
	within 10000 "$KVSYNC" --token-file "$WORK/token" "$URL2" "$WORK/pulled"
same_export "the pulled store holds the daemon's namespace" "$SRV2" "$WORK/pulled"
kill -TERM "$stall" 2>/dev/null || true

# A client that stops sending: mid-session, or before asking for anything.
for mode in push idle; do
	bg "stall-$mode" "$STALL_CLIENT" 127.0.0.1 "$port2" "$WORK/token" "$mode" 120
	stall=$BG_PID
	check "a client authenticates and goes silent ($mode)" \
		within 30000 grep -q stalled "$WORK/stall-$mode.out"
	check_exit "while it is silent, the next client is refused as busy (exit 3)" 3 \
		kvsync --token-file "$WORK/token" "$URL2" "$WORK/pulled"
	before=$(grep -c "stopped answering (timed out)" "$WORK/srv2.log")
	dropped() {
		[ "$(grep -c "stopped answering (timed out)" "$WORK/srv2.log")" -gt "$before" ]
	}
	check "the daemon drops it after its --timeout" within 20000 dropped
	check "and serves the next client" \
		within 10000 "$KVSYNC" --token-file "$WORK/token" "$URL2" "$WORK/pulled"
	kill -TERM "$stall" 2>/dev/null || true
done
finish
