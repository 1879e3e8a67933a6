#!/usr/bin/env bash
# test_notify: `kvsync serve` under systemd's Type=notify says READY=1 on
# the socket NOTIFY_SOCKET names once it listens, and STOPPING=1 at SIGTERM.
# `kvsync --watch` says READY=1 once its initial sync has caught up, in
# every direction: a push, a pull from a daemon, and --both (two
# sessions); DST holds every record SRC had before the start as soon as
# READY=1 arrives; and STOPPING=1 at SIGTERM.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
notify_listen ready
NOTIFY_SOCKET="$WORK/ready.sock" serve srv "$WORK/srv" --listen "127.0.0.1:$port"
check_ready "kvsync serve says READY=1 to the notify socket" ready
put_values "$WORK/a" n: 5
check_exit "and serves a push once it has said so" 0 kvsync "$WORK/a" "kvsync://127.0.0.1:$port"


# bulk_file FILE PREFIX N: a bulk put file of N keys of 1 KiB.
bulk_file() {
	local i sep=''
	{
		printf '['
		for i in $(seq 1 "$3"); do
			printf '%s{"key":"%s%d","value":"%01024d"}' "$sep" "$2" "$i" "$i"
			sep=,
		done
		printf ']'
	} >"$1"
}
bulk_file "$WORK/w.json" w: 3000
kvctl "$WORK/wsrc" bulk put "$WORK/w.json" >/dev/null 2>&1

# watch_ready NAME DESC ARGS...: start `kvsync --watch ARGS` under a notify
# socket NAME; READY=1 must come; sets W_PID.
watch_ready() {
	local name=$1 desc=$2
	shift 2
	notify_listen "$name"
	NOTIFY_SOCKET="$WORK/$name.sock" bg "$name-watch" "$KVSYNC" --watch "$@"
	W_PID=$BG_PID
	check_ready "$desc" "$name"
}

# --bwlimit makes the initial sync take a second or two: a READY=1 sent
# before it is over would find DST short of SRC.
watch_ready wpush "kvsync --watch (a push) says READY=1" --bwlimit 2M "$WORK/wsrc" "$WORK/wdst"
same_export "and DST holds SRC's 3000 records when it does" "$WORK/wsrc" "$WORK/wdst"
check_stopping "kvsync --watch says STOPPING=1 at SIGTERM" wpush \
	term_exits_0 "and exits 0" "$W_PID"

kvsync "$WORK/wsrc" "kvsync://127.0.0.1:$port" 2>/dev/null
watch_ready wpull "kvsync --watch (a pull from a daemon) says READY=1" \
	"kvsync://127.0.0.1:$port" "$WORK/wpulled"
same_export "and DST holds the daemon's records when it does" "$WORK/srv" "$WORK/wpulled"
term_exits_0 "a SIGTERM ends it with exit 0" "$W_PID"

bulk_file "$WORK/v.json" v: 2000
kvctl "$WORK/vsrc" bulk put "$WORK/v.json" >/dev/null 2>&1
watch_ready wboth "kvsync --watch --both says READY=1" --both "$WORK/wsrc" "$WORK/vsrc"
same_export "and both stores hold both namespaces when it does" "$WORK/wsrc" "$WORK/vsrc"
term_exits_0 "a SIGTERM ends it with exit 0" "$W_PID"

# A source whose every change was a delete that GC has since collected:
# its feed has a head but nothing left to send.  The pull has still caught
# up, and must say so (an empty batch carries the watermark).
kvctl "$WORK/gone" put k v >/dev/null 2>&1
kvctl "$WORK/gone" delete k >/dev/null 2>&1
t "$GC_TOMBSTONES" "$WORK/gone" 0 >/dev/null
gport=$(free_port)
srv_pid=$SERVE_PID
serve gone "$WORK/gone" --listen "127.0.0.1:$gport"
gone_pid=$SERVE_PID
SERVE_PID=$srv_pid
watch_ready wgone "kvsync --watch (a pull of collected deletes only) says READY=1" \
	"kvsync://127.0.0.1:$gport" "$WORK/wgone"
term_exits_0 "a SIGTERM ends it with exit 0" "$W_PID"
term_exits_0 "and the daemon too" "$gone_pid"

check_stopping "kvsync serve says STOPPING=1 at SIGTERM" ready \
	term_exits_0 "and exits 0" "$SERVE_PID"

finish
