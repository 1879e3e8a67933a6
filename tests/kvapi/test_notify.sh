#!/usr/bin/env bash
# test_notify: under systemd's Type=notify, kvapi says READY=1 on the
# socket NOTIFY_SOCKET names once it serves, so a unit that orders itself
# after kvapi.service finds it answering; and STOPPING=1 when told to stop.
. "$(dirname "$0")/lib.sh"

: "${NOTIFY_RECV:?NOTIFY_RECV must name the notify_recv helper}"

# listen NAME: a notify socket $WORK/NAME.sock, its messages in NAME.out.
listen() {
	timeout 60 "$NOTIFY_RECV" "$WORK/$1.sock" 30 >"$WORK/$1.out" 2>&1 &
	RECV_PID=$!
	PIDS+=("$RECV_PID")
	for _ in $(seq 250); do
		[ -S "$WORK/$1.sock" ] && return 0
		sleep 0.02
	done
	return 1
}

listen ready
NOTIFY_SOCKET="$WORK/ready.sock" start_kvapi "$WORK/root"
rc=0
wait "$RECV_PID" || rc=$?
check_eq "kvapi says READY=1 to the notify socket" "$rc" 0
check "the message is READY=1" grep -qx 'READY=1' "$WORK/ready.out"
api "$BASE" >/dev/null
check_eq "and it answers once it has said so" "$(status)" 200

# STOPPING=1 at SIGTERM: the same socket name, a new listener.
rm -f "$WORK/ready.sock"
timeout 60 "$NOTIFY_RECV" "$WORK/ready.sock" 30 >"$WORK/stop.out" 2>&1 &
STOP_PID=$!
PIDS+=("$STOP_PID")
for _ in $(seq 250); do [ -S "$WORK/ready.sock" ] && break; sleep 0.02; done
kill -TERM "$KVAPI_PID"
rc=0
wait "$KVAPI_PID" || rc=$?
check_eq "kvapi exits 0 on SIGTERM" "$rc" 0
# notify_recv waits for READY=1 only; what it printed before its timeout
# is what kvapi said at the stop.
kill -TERM "$STOP_PID" 2>/dev/null || true
wait "$STOP_PID" 2>/dev/null || true
check "and says STOPPING=1 first" grep -qx 'STOPPING=1' "$WORK/stop.out"

finish
