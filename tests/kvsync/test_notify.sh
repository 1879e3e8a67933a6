#!/usr/bin/env bash
# test_notify: `kvsync serve` under systemd's Type=notify says READY=1 on
# the socket NOTIFY_SOCKET names once it listens, and STOPPING=1 at SIGTERM.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
notify_listen ready
NOTIFY_SOCKET="$WORK/ready.sock" serve srv "$WORK/srv" --listen "127.0.0.1:$port"
check_ready "kvsync serve says READY=1 to the notify socket" ready
put_values "$WORK/a" n: 5
check_exit "and serves a push once it has said so" 0 kvsync "$WORK/a" "kvsync://127.0.0.1:$port"

check_stopping "kvsync serve says STOPPING=1 at SIGTERM" ready \
	term_exits_0 "and exits 0" "$SERVE_PID"

finish
