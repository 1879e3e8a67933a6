#!/usr/bin/env bash
# test_transport: --timeout on the remote transports, and nothing local
# before the peer is known.  A daemon that stops answering (SIGSTOPped)
# and a remote shell whose far end says nothing end the sync with exit 3
# and a clear message (under an outer timeout many times --timeout: no
# timed assertion); a daemon whose accept queue is full (SYNs dropped) ends
# the TCP connect the same way.  A pull refused at authentication (wrong
# or missing token), from a port nobody listens on, through a remote shell
# that fails or hangs, or from a daemon that stopped, leaves a missing DST
# missing: no directory, no lock file.  --bwlimit's waits end at a signal,
# a pull's from a daemon too.
. "$(dirname "$0")/lib.sh"

A=$WORK/a
put_values "$A" t: 5
printf 'sesame\n' >"$WORK/token"
printf 'wrong\n' >"$WORK/wrong"
T_SECONDS=30 # the outer bound of every run: many times the --timeout 2 below

# ---- refused at authentication, unreachable, a failing remote shell
tport=$(free_port)
serve tsrv "$WORK/tsrv" --listen "127.0.0.1:$tport" --token-file "$WORK/token"
check_exit "a pull with a wrong token is an authentication failure (exit 5)" 5 \
	kvsync --token-file "$WORK/wrong" "kvsync://127.0.0.1:$tport" "$WORK/d1"
check "and creates no local store" test ! -e "$WORK/d1"
check_exit "a pull without the token the daemon needs (exit 5)" 5 \
	kvsync "kvsync://127.0.0.1:$tport" "$WORK/d2"
check "creates no local store" test ! -e "$WORK/d2"
check_exit "-z changes nothing to that (exit 5)" 5 \
	kvsync -z --token-file "$WORK/wrong" "kvsync://127.0.0.1:$tport" "$WORK/d3"
check "no local store" test ! -e "$WORK/d3"
check_exit "a pull with the right token succeeds" 0 \
	kvsync --token-file "$WORK/token" "kvsync://127.0.0.1:$tport" "$WORK/d4"
check "and creates the store" test -d "$WORK/d4"

closed=$(free_port)
check_exit "a pull from a port nobody listens on (exit 3)" 3 \
	kvsync "kvsync://127.0.0.1:$closed" "$WORK/d5"
check_err "says it cannot connect" "cannot connect to 127.0.0.1 port $closed"
check "and creates no local store" test ! -e "$WORK/d5"
check_exit "a pull through a remote shell that fails (exit 3)" 3 \
	kvsync -e false "host:$WORK/a" "$WORK/d6"
check "creates no local store" test ! -e "$WORK/d6"
check_exit "a pull of a missing remote store (exit 4)" 4 \
	kvsync -e "$SYNC_DIR/fake-rsh.sh" --kvsync-path "$KVSYNC" "host:$WORK/nothing" "$WORK/d7"
check "creates no local store" test ! -e "$WORK/d7"

# ---- peers that stop answering
printf '#!/bin/sh\nexec sleep 600\n' >"$WORK/silent-rsh"
chmod +x "$WORK/silent-rsh"
check_exit "a remote shell whose far end says nothing: exit 3 after --timeout" 3 \
	kvsync --timeout 2 -e "$WORK/silent-rsh" "host:$WORK/a" "$WORK/d8"
check_err "saying the server stopped answering" "the server stopped answering (timed out)"
check "and creates no local store" test ! -e "$WORK/d8"
check_exit "the same for a push" 3 kvsync --timeout 2 -e "$WORK/silent-rsh" "$A" "host:$WORK/x"
check_err "saying so" "the server stopped answering (timed out)"

port=$(free_port)
serve srv "$WORK/srv" --listen "127.0.0.1:$port"
check_exit "the daemon serves a push" 0 kvsync "$A" "kvsync://127.0.0.1:$port"
# bg runs it under timeout(1): stop kvsync itself, its child.
DAEMON=$(pgrep -P "$SERVE_PID")
kill -STOP "$DAEMON"
check_exit "a pull from a SIGSTOPped daemon: exit 3 after --timeout" 3 \
	kvsync --timeout 2 "kvsync://127.0.0.1:$port" "$WORK/d9"
check_err "saying the server stopped answering" "the server stopped answering (timed out)"
check "and creates no local store" test ! -e "$WORK/d9"
check_exit "a push to it: exit 3 too" 3 kvsync --timeout 2 -z "$A" "kvsync://127.0.0.1:$port"
check_err "saying so" "the server stopped answering (timed out)"

# Fill the stopped daemon's accept queue (its backlog is 64): the kernel
# then drops further SYNs, and a connect would wait minutes for its own
# limit.  --timeout bounds it.
for i in $(seq 1 80); do
	timeout 40 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; sleep 40" 2>/dev/null &
	PIDS+=("$!")
done
sleep 1
check_exit "a connect the daemon's kernel never answers: exit 3 after --timeout" 3 \
	kvsync --timeout 2 "$A" "kvsync://127.0.0.1:$port"
check_err "saying the connect timed out" "cannot connect to 127.0.0.1 port $port: timed out"
check_exit "a pull the same way creates no local store" 3 \
	kvsync --timeout 2 "kvsync://127.0.0.1:$port" "$WORK/d10"
check "none" test ! -e "$WORK/d10"
kill -CONT "$DAEMON"

# watch_term DESC NAME ARGS...: `kvsync --watch ARGS` (stderr in
# $WORK/NAME.log), sent SIGTERM a second after it starts, must end with
# exit 0.  -k: one that ignored the TERM fails the check, not the test.
# The TERM goes to kvsync itself: timeout would follow its own with a
# SIGCONT, which can cancel the SIGSTOP by which the leak checker of a
# sanitizer build stops the exiting process, and leave that checker
# waiting for ever.
watch_term() {
	local desc=$1 name=$2 pid rc=0
	shift 2
	timeout -k 5 30 "$KVSYNC" --watch "$@" 2>"$WORK/$name.log" &
	pid=$!
	PIDS+=("$pid")
	sleep 1
	kill -TERM "$(pgrep -P "$pid")"
	wait "$pid" || rc=$?
	check_eq "$desc" "$rc" 0
}

# --bwlimit's waits end at a signal: a --watch writing at 1 KiB/s stops at
# SIGTERM with exit 0, long before its initial sync could end.
put_values "$A" big: 200
watch_term "a --watch held back by --bwlimit ends at SIGTERM with exit 0" slow \
	--bwlimit 1 "$A" "$WORK/slow"
# The same for a pull from a daemon, held back by what this side reads
# (a daemon of its own: the one above still has the connections held open).
pport=$(free_port)
serve psrv "$WORK/psrv" --listen "127.0.0.1:$pport"
check_exit "a daemon takes a push of them" 0 kvsync "$A" "kvsync://127.0.0.1:$pport"
watch_term "a --watch pull from a daemon held back by --bwlimit ends at SIGTERM with exit 0" \
	slowpull --bwlimit 1 "kvsync://127.0.0.1:$pport" "$WORK/slowpull"
finish
