#!/usr/bin/env bash
# test_watch: --watch.  Each commit on the source reaches the destination
# well within a second (local peer, remote shell, --both both ways), -v
# lines appear as records land, an idle connection stays up past the
# keep-alive interval, SIGINT and SIGTERM end it cleanly, and the death of
# the peer ends it with exit 3.
. "$(dirname "$0")/lib.sh"

A=$WORK/a B=$WORK/b
kvctl "$A" put w:0 start 2>/dev/null

# arrives STORE KEY VALUE: KEY holds VALUE in STORE within a second.
arrives() {
	within 1000 bash -c '[ "$("$0" "$1" get "$2" 2>/dev/null)" = "$3" ]' "$KVCTL" "$@"
}

bg push "$KVSYNC" --watch -v "$A" "$B"
push_pid=$BG_PID
check "the first sync of a --watch catches up" \
	within 5000 bash -c '[ "$("$0" "$1" get w:0 2>/dev/null)" = start ]' "$KVCTL" "$B"
late=0
for i in $(seq 1 10); do
	kvctl "$A" put "w:$i" "value $i"
	arrives "$B" "w:$i" "value $i" || late=$((late + 1))
done
check_eq "ten writes each reach the destination within a second" "$late" 0
kvctl "$A" delete w:1
check "a delete reaches the destination within a second" \
	within 1000 bash -c '! "$0" "$1" get w:1 2>/dev/null' "$KVCTL" "$B"
check "-v lines are written as records land" grep -qx -- "- w:1" "$WORK/push.out"

sleep 6 # past the keep-alive interval
kvctl "$A" put w:idle "after a pause"
check "a write after an idle pause still arrives" arrives "$B" w:idle "after a pause"
kill -INT "$push_pid"
rc=0
wait "$push_pid" || rc=$?
check_eq "SIGINT ends --watch cleanly (exit 0)" "$rc" 0

# Both ways at once.
C=$WORK/c D=$WORK/d
kvctl "$C" put from:c 1 2>/dev/null
kvctl "$D" put from:d 1 2>/dev/null
bg both "$KVSYNC" --watch --both "$C" "$D"
both_pid=$BG_PID
check "--watch --both first brings each side the other's records" \
	within 5000 bash -c '"$0" "$1" get from:d && "$0" "$2" get from:c' "$KVCTL" "$C" "$D"
kvctl "$C" put live:c "written on C"
kvctl "$D" put live:d "written on D"
check "--watch --both: a write on SRC reaches DST within a second" arrives "$D" live:c "written on C"
check "--watch --both: a write on DST reaches SRC within a second" arrives "$C" live:d "written on D"
kill -TERM "$both_pid"
rc=0
wait "$both_pid" || rc=$?
check_eq "SIGTERM ends --watch --both cleanly (exit 0)" "$rc" 0

# Through a remote shell, pulling.
E=$WORK/e
bg pull "$KVSYNC" --watch -e "$SYNC_DIR/fake-rsh.sh" --kvsync-path "$KVSYNC" "host:$A" "$E"
pull_pid=$BG_PID
check "a pulling --watch through a remote shell catches up" \
	within 5000 bash -c '"$0" "$1" get w:idle' "$KVCTL" "$E"
kvctl "$A" put w:remote "through the shell"
check "and then follows each write within a second" arrives "$E" w:remote "through the shell"

# The peer dies: the client ends with a connection error.
peer=""
for p in $(pgrep -P "$(pgrep -P "$pull_pid")" || true); do peer=$p; done
while [ -n "$peer" ] && [ "$(cat "/proc/$peer/comm" 2>/dev/null)" != kvsync ]; do
	peer=$(pgrep -P "$peer" | head -n 1 || true)
done
if [ -n "$peer" ]; then
	kill -KILL "$peer"
	rc=0
	wait "$pull_pid" || rc=$?
	check_eq "when the remote side dies, --watch ends with exit 3" "$rc" 3
	check "and says the connection closed" grep -q "connection closed" "$WORK/pull.log"
else
	not_ok "found the remote kvsync of the pulling --watch"
fi
finish
