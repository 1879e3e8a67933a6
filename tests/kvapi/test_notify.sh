#!/usr/bin/env bash
# test_notify: under systemd's Type=notify, kvapi says READY=1 on the
# socket NOTIFY_SOCKET names once it serves, so a unit that orders itself
# after kvapi.service finds it answering; and STOPPING=1 when told to stop.
. "$(dirname "$0")/lib.sh"

notify_listen ready
NOTIFY_SOCKET="$WORK/ready.sock" start_kvapi "$WORK/root"
check_ready "kvapi says READY=1 to the notify socket" ready
api "$BASE" >/dev/null
check_eq "and it answers once it has said so" "$(status)" 200

# STOPPING=1 at SIGTERM: the same socket name, a new listener (it waits
# for READY=1 only, so it is stopped after kvapi and its output read).
notify_listen ready
STOP_PID=$RECV_PID
kill -TERM "$KVAPI_PID"
rc=0
wait "$KVAPI_PID" || rc=$?
check_eq "kvapi exits 0 on SIGTERM" "$rc" 0
kill -TERM "$STOP_PID" 2>/dev/null || true
wait "$STOP_PID" 2>/dev/null || true
check "and says STOPPING=1 first" grep -qx 'STOPPING=1' "$WORK/ready.out"

finish
