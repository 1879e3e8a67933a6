#!/usr/bin/env bash
# test_notify: `kvfs -f` under systemd's Type=notify says READY=1 on the
# socket NOTIFY_SOCKET names once the mount answers, and STOPPING=1 when it
# is unmounted.
. "$(dirname "$0")/lib.sh"

notify_listen ready
NOTIFY_SOCKET="$WORK/ready.sock" mount_kvfs "$WORK/store" "$WORK/mnt"
check_ready "kvfs says READY=1 to the notify socket" ready
check "the mount is usable once it has said so" \
	sh -c "echo hello >'$WORK/mnt/greeting' && test \"\$(cat '$WORK/mnt/greeting')\" = hello"

check_stopping "and STOPPING=1 once unmounted" ready unmount_kvfs "$WORK/mnt" "$KVFS_PID"

finish
