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

check_stopping "kvapi says STOPPING=1 at SIGTERM" ready \
	term_exits_0 "and exits 0" "$KVAPI_PID"

finish
