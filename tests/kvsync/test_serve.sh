#!/usr/bin/env bash
# test_serve: the `kvsync serve` daemon on loopback.  With a token file,
# the right token syncs both ways, a wrong or missing token is refused with
# exit 5 before anything is written; without one, loopback clients are
# served and a client holding a token refuses the unauthenticated server.
# Several connections are served at once, --watch works through the daemon,
# both ends of a connection send keep-alive probes, a client refused for
# the daemon's limits (handshakes from one address, sessions) is told it is
# busy (exit 3) even when it holds a token, and SIGTERM stops the daemon
# cleanly.
. "$(dirname "$0")/lib.sh"

A=$WORK/a SRV=$WORK/srv
put_values "$A" s: 40
printf 'correct horse battery staple\n' >"$WORK/token"
printf 'wrong horse\n' >"$WORK/bad"
chmod 600 "$WORK/token" "$WORK/bad"

port=$(free_port)
check "the daemon starts with a token file" \
	serve srv "$SRV" --listen "127.0.0.1:$port" --token-file "$WORK/token"
srv_pid=$SERVE_PID
URL=kvsync://127.0.0.1:$port

check_exit "a push with the right token succeeds" 0 kvsync --token-file "$WORK/token" "$A" "$URL"
same_export "the daemon's store holds the namespace" "$A" "$SRV"
check_exit "a pull with the right token succeeds" 0 kvsync --token-file "$WORK/token" "$URL" "$WORK/c"
same_export "the pulled store holds the namespace" "$A" "$WORK/c"

kvctl "$A" put s:new "must not arrive"
snapshot "$SRV" "$WORK/before"
check_exit "a push with a wrong token is refused (exit 5)" 5 \
	kvsync --token-file "$WORK/bad" "$A" "$URL"
check_err "the client says authentication failed" "authentication failed"
check_exit "a push without a token is refused (exit 5)" 5 kvsync "$A" "$URL"
check_err "the client says a token is required" "requires a token"
snapshot "$SRV" "$WORK/after"
check "refused clients wrote nothing" cmp -s "$WORK/before" "$WORK/after"
snapshot "$WORK/c" "$WORK/c-before"
check_exit "a pull with a wrong token is refused (exit 5)" 5 \
	kvsync --token-file "$WORK/bad" "$URL" "$WORK/c"
snapshot "$WORK/c" "$WORK/c-after"
check "and nothing was read into the client's store" cmp -s "$WORK/c-before" "$WORK/c-after"
check "the daemon logged the refusal" grep -q "wrong token" "$WORK/srv.log"

# Several clients at once, each in a process of its own.
for i in 1 2 3; do kvctl "$WORK/p$i" put "from:$i" "client $i" 2>/dev/null; done
pids=()
for i in 1 2 3; do
	t "$KVSYNC" --both --token-file "$WORK/token" "$WORK/p$i" "$URL" 2>>"$WORK/kvsync.log" &
	pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check_eq "three concurrent syncs through the daemon succeed" "$fails" 0
check "their writes all reached the daemon's store" \
	bash -c '"$0" "$1" get from:1 && "$0" "$1" get from:2 && "$0" "$1" get from:3' "$KVCTL" "$SRV"

# --watch through the daemon.
bg watch "$KVSYNC" --watch --token-file "$WORK/token" "$URL" "$WORK/w"
watch_pid=$BG_PID
sleep 0.5
kvctl "$SRV" put live:1 "seen live"
check "a write on the daemon's store reaches a --watch client within 2 s" \
	within 2000 bash -c '[ "$("$0" "$1" get live:1 2>/dev/null)" = "seen live" ]' "$KVCTL" "$WORK/w"
# A peer that vanishes without a word (host off, cable out) is found by
# keep-alive probes after a minute of silence, on both ends.
if command -v ss >/dev/null; then
	probes() {
		ss -tnoH state established "( $1 = :$port )" | grep -q 'timer:(keepalive,[0-9]*sec'
	}
	check "the daemon's end of a connection probes a silent peer within a minute" \
		within 2000 probes sport
	check "and so does the client's end" within 2000 probes dport
fi
kill -TERM "$watch_pid"
rc=0
wait "$watch_pid" || rc=$?
check_eq "SIGTERM ends --watch cleanly (exit 0)" "$rc" 0

# Without a token: loopback clients only, and a client with a token refuses it.
port2=$(free_port)
check "a daemon without a token starts" serve open "$WORK/open" --listen "127.0.0.1:$port2"
check_err_log() { grep -q "$1" "$WORK/open.log"; }
check "it says it takes loopback clients only" check_err_log "loopback clients only"
check_exit "a loopback client of a tokenless daemon syncs" 0 kvsync "$A" "kvsync://127.0.0.1:$port2"
check_exit "a client holding a token refuses a daemon that cannot prove it (exit 5)" 5 \
	kvsync --token-file "$WORK/token" "$A" "kvsync://127.0.0.1:$port2"
check_exit "a daemon nobody listens on is a connection error (exit 3)" 3 \
	kvsync "$A" "kvsync://127.0.0.1:$(free_port)"

# 64 connections that never greet: at most 5 of them from one address are
# let into the handshake, the rest are told the daemon is busy.  A client
# holding the token that comes from the same address is refused as busy
# too: exit 3 with its own message, never the exit 5 of an auth failure.
conns=()
for i in $(seq 64); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$port"
	conns+=("$fd")
done
check_exit "a client beside 64 silent connections from its address is refused as busy (exit 3)" 3 \
	kvsync --token-file "$WORK/token" "$A" "$URL"
check_err "the client says the daemon is busy" "busy, try again later"
check "the daemon logged the refusals" grep -q "refused: busy" "$WORK/srv.log"
for fd in "${conns[@]}"; do exec {fd}>&-; done
check_exit "once they are gone, a client is served again" 0 \
	within 10000 kvsync --token-file "$WORK/token" "$A" "$URL"

# Sessions have a limit of their own (--max-sessions): with both taken by
# --watch clients, the next client is told it is busy after its handshake.
port3=$(free_port)
check "a daemon with --max-sessions 2 starts" \
	serve two "$WORK/two" --listen "127.0.0.1:$port3" --max-sessions 2
watchers=()
for i in 1 2; do
	bg "w$i" "$KVSYNC" --watch "kvsync://127.0.0.1:$port3" "$WORK/w$i"
	watchers+=("$BG_PID")
done
kvctl "$WORK/two" put seen:1 "by both watchers"
both_watching() {
	[ "$("$KVCTL" "$WORK/w1" get seen:1 2>/dev/null)" = "by both watchers" ] &&
		[ "$("$KVCTL" "$WORK/w2" get seen:1 2>/dev/null)" = "by both watchers" ]
}
check "two --watch clients hold both sessions" within 10000 both_watching
check_exit "a third client is refused as busy (exit 3)" 3 kvsync "$A" "kvsync://127.0.0.1:$port3"
check_err "the client says the sessions are taken" "busy, try again later (all sessions are taken)"
kill -TERM "${watchers[0]}"
check_exit "once a watcher leaves, a client is served again" 0 \
	within 10000 kvsync "$A" "kvsync://127.0.0.1:$port3"
kill -TERM "${watchers[1]}"

kill -TERM "$srv_pid"
rc=0
wait "$srv_pid" || rc=$?
check_eq "SIGTERM stops the daemon cleanly (exit 0)" "$rc" 0
finish
