#!/usr/bin/env bash
# test_watch: kvctl STORE watch prints every committed change, whoever made
# it (kvctl put/delete/bulk, a kvfs mount, kvsync, the reaper), one JSON
# line each, in seq order; for every key its last line is the key's entry
# in the change feed (what `watch --since 0` prints afterwards); --prefix
# keeps only the keys under it; a watch stopped and resumed with
# --since <last seq printed> loses nothing and repeats nothing; --values
# gives the exact bytes of binary and large values; SIGINT, SIGTERM and a
# reader that closed the pipe end it with status 0, even while it waits
# for a reader that stopped reading; --since past the head is refused;
# resuming from before the tombstone collection horizon says so.
. "$(dirname "$0")/../fs/lib.sh"

: "${KVSYNC:?KVSYNC must name the kvsync binary}"
: "${GC_TOMBSTONES:?GC_TOMBSTONES must name the gc_tombstones helper}"

kv() { t "$KVCTL" "$@"; }

S=$WORK/store
M=$WORK/mnt
kv "$S" put seed 0 2>/dev/null
mount_kvfs "$S" "$M"

# start_watch NAME ARGS...: kvctl S watch ARGS in the background, its
# output in $WORK/NAME.out (or $OUT) and .err; waits until it has started
# (its "since:" line).  Sets WPID, the pid of the timeout running it
# (signals and the exit status pass through).  A background job starts
# with SIGINT ignored: restore the default, as a terminal's job has it.
start_watch() {
	local name=$1
	shift
	env --default-signal=INT timeout --foreground 300 "$KVCTL" "$S" watch "$@" \
		>"${OUT:-$WORK/$name.out}" 2>"$WORK/$name.err" &
	WPID=$!
	PIDS+=("$WPID")
	if ! within 10000 started "$WORK/$name.err" || ! grep -q '^since: ' "$WORK/$name.err"; then
		not_ok "kvctl watch $* starts (said: $(head -c 300 "$WORK/$name.err"))"
		finish || true
		exit 1
	fi
}

# started ERRFILE: the watcher said where it starts, or is gone.
started() {
	grep -q '^since: ' "$1" || ! kill -0 "$WPID" 2>/dev/null
}

# stop_watch PID SIGNAL: send SIGNAL; STATUS is the watcher's exit status.
stop_watch() {
	STATUS=0
	kill -"$2" "$1"
	timeout 20 tail --pid="$1" -f /dev/null || true
	wait "$1" || STATUS=$?
}

# check_refused DESC STATUS MESSAGE CMD...: CMD exits with STATUS and says
# MESSAGE (a whole line) on stderr.
check_refused() {
	local desc=$1 want_status=$2 want=$3 status=0
	shift 3
	t "$@" >/dev/null 2>"$WORK/stderr" || status=$?
	if [ "$status" = "$want_status" ] && grep -qxF -- "$want" "$WORK/stderr"; then
		ok "$desc"
	else
		not_ok "$desc (exit $status; said: $(head -c 300 "$WORK/stderr"))"
	fi
}

# shows NAME KEY OP: the watcher's output holds a line for KEY with OP.
shows() {
	grep -qF "\"key\":\"$2\",\"op\":\"$3\"" "$WORK/$1.out"
}

# last_lines FILE: the last line of each key, sorted by key (without "value").
last_lines() {
	sed 's/,"value":[^}]*}$/}/' "$1" |
		awk '{ k = $0; sub(/^.*"key":/, "", k); sub(/,"op":.*$/, "", k); last[k] = $0 }
		     END { for (k in last) print last[k] }' | sort
}

# seqs_increase FILE: the seq of each line is greater than the one before.
seqs_increase() {
	sed 's/^{"seq":\([0-9]*\),.*/\1/' "$1" | awk 'NR > 1 && $1 <= prev { exit 1 } { prev = $1 }'
}

head_seq=$(kv "$S" stats | sed -n 's/.*"feed_head": \([0-9]*\).*/\1/p')
start_watch all
all=$WPID
check_eq "without --since the watch starts at the feed head and says so" \
	"$(cat "$WORK/all.err")" "since: $head_seq"
start_watch pre --prefix p:
pre=$WPID
start_watch vals --values
vals=$WPID

# kvctl: put, put with metadata and expiration, delete, bulk put/delete.
exp=$(($(date +%s) + 86400))
kv "$S" put p:a 1
within 10000 shows all p:a put
kv "$S" delete p:a
kv "$S" put p:meta v --metadata '{"n":[1,2.5],"s":"x"}' --expiration "$exp"
kv "$S" put other v
printf '[{"key":"p:b1","value":"x"},{"key":"b2","value":"eA==","base64":true}]' >"$WORK/bulk.json"
kv "$S" bulk put "$WORK/bulk.json" 2>/dev/null
printf '["b2"]' | kv "$S" bulk delete - 2>/dev/null
# Binary and large values (over 256 KiB: stored in pieces).
for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done >"$WORK/bytes"
head -c 300000 /dev/urandom >"$WORK/large"
kv "$S" put bin --path "$WORK/bytes"
kv "$S" put large --path "$WORK/large"
# The mount.
mkdir -p "$M/p/fs"
echo "from the mount" >"$M/p/fs/file"
within 10000 shows all p:fs:file put
rm "$M/p/fs/file"
# kvsync from another store.
kv "$WORK/peer" put p:synced "from a peer" 2>/dev/null
check "kvsync pushes a key into the store" t "$KVSYNC" "$WORK/peer" "$S"
# Expiry: a key with a ttl of 1 s, reaped once expired.
kv --min-ttl 1 "$S" put p:ttl v --ttl 1
within 10000 shows all p:ttl put
within 5000 sh -c '! "$0" "$1" get p:ttl' "$KVCTL" "$S" 2>/dev/null
kv "$S" reap >/dev/null
kv "$S" put done v
within 10000 shows all done put
within 10000 shows vals done put

check "every change shows: a kvctl put, then its delete" \
	sh -c 'grep -q "\"key\":\"p:a\",\"op\":\"put\"" "$0" && grep -q "\"key\":\"p:a\",\"op\":\"delete\"" "$0"' "$WORK/all.out"
check_eq "a put shows its expiration and its metadata compact" \
	"$(grep -o '"key":"p:meta".*' "$WORK/all.out")" \
	"\"key\":\"p:meta\",\"op\":\"put\",\"expiration\":$exp,\"metadata\":{\"n\":[1,2.5],\"s\":\"x\"}}"
check "a bulk put shows each key" sh -c 'grep -q "\"key\":\"p:b1\",\"op\":\"put\"" "$0"' "$WORK/all.out"
check "a bulk delete shows as a delete" shows all b2 delete
check "a file written in the mount shows as a put" shows all p:fs:file put
check "a file removed in the mount shows as a delete" shows all p:fs:file delete
check "a key kvsync applied shows" shows all p:synced put
check "seqs only grow, line after line" seqs_increase "$WORK/all.out"

start_watch feed --since 0
feed=$WPID
within 10000 shows feed done put
stop_watch "$feed" TERM
check_eq "the watch stops on SIGTERM with status 0" "$STATUS" 0
# Expiring is no change: the watcher that read p:ttl live has its put and
# expiration; one that reads it after shows a delete, at the same seq.
ttl_put=$(grep -F '"key":"p:ttl","op":"put"' "$WORK/all.out")
check "a key put with a ttl shows its expiration" \
	sh -c 'echo "$0" | grep -q "\"expiration\":[0-9]*,"' "$ttl_put"
check_eq "and nothing more when it expires and is reaped" \
	"$(grep -c '"key":"p:ttl"' "$WORK/all.out")" 1
check_eq "a watch that reads it after it expired shows a delete at the seq of the put" \
	"$(grep -F '"key":"p:ttl"' "$WORK/feed.out")" \
	"${ttl_put%%,\"key\"*},\"key\":\"p:ttl\",\"op\":\"delete\",\"expiration\":null,\"metadata\":null}"
check_eq "for every other key, the last line a watcher printed is the key's entry in the feed" \
	"$(grep -v '"key":"p:ttl"' "$WORK/all.out" | last_lines /dev/stdin)" \
	"$(grep -v '"key":"seed"\|"key":"p:ttl"' "$WORK/feed.out" | last_lines /dev/stdin)"
check_eq "--prefix shows only the keys under it, each as the feed has it last" \
	"$(grep -v '"key":"p:ttl"' "$WORK/pre.out" | last_lines /dev/stdin)" \
	"$(grep '"key":"p:' "$WORK/feed.out" | grep -v '"key":"p:ttl"' | last_lines /dev/stdin)"
check "--prefix shows nothing else" sh -c '! grep -v "\"key\":\"p:" "$0"' "$WORK/pre.out"

# value_of NAME KEY: the decoded value of KEY's last put in NAME's output.
value_of() {
	grep -F "\"key\":\"$2\",\"op\":\"put\"" "$WORK/$1.out" | tail -n 1 |
		sed 's/.*"value":"\([^"]*\)"}$/\1/' | base64 -d
}
check "--values gives the 256 byte values exactly" cmp <(value_of vals bin) "$WORK/bytes"
check "--values gives a 300 KB random value exactly" cmp <(value_of vals large) "$WORK/large"
check_eq "--values gives text as base64 too" "$(value_of vals other)" v
check "a delete's value is null" \
	sh -c 'grep -F "\"key\":\"b2\",\"op\":\"delete\"" "$0" | grep -q "\"value\":null}$"' "$WORK/vals.out"
check "without --values there is no value" sh -c '! grep -q "\"value\"" "$0"' "$WORK/all.out"

stop_watch "$all" INT
check_eq "the watch stops on SIGINT with status 0" "$STATUS" 0
stop_watch "$pre" TERM
check_eq "and on SIGTERM" "$STATUS" 0
stop_watch "$vals" TERM

# Resuming: stop a watch, write while none runs (a key anew, one key
# twice), resume with --since the last seq printed.
for i in 1 2 3; do kv "$S" put "r$i" "$i"; done
start_watch r1 --since "$head_seq"
within 10000 shows r1 r3 put
stop_watch "$WPID" INT
check_eq "a stopped watch exits 0" "$STATUS" 0
last=$(tail -n 1 "$WORK/r1.out" | sed 's/^{"seq":\([0-9]*\),.*/\1/')
kv "$S" put r4 4
kv "$S" put r2 two
kv "$S" put r2 second
kv "$S" delete r1
start_watch r2 --since "$last"
within 10000 shows r2 r1 delete
check_eq "the resumed watch prints what changed after, once a key, in seq order" \
	"$(sed 's/^{"seq":[0-9]*,//' "$WORK/r2.out")" \
	"$(printf '%s\n' '"key":"r4","op":"put","expiration":null,"metadata":null}' \
		'"key":"r2","op":"put","expiration":null,"metadata":null}' \
		'"key":"r1","op":"delete","expiration":null,"metadata":null}')"
check_eq "the resumed watch says where it resumed" "$(cat "$WORK/r2.err")" "since: $last"
cat "$WORK/r1.out" "$WORK/r2.out" >"$WORK/r.out"
check_eq "no seq is printed twice across the restart" \
	"$(sed 's/^{"seq":\([0-9]*\),.*/\1/' "$WORK/r.out" | sort | uniq -d)" ""
stop_watch "$WPID" TERM
start_watch rf --since "$head_seq"
within 10000 shows rf r1 delete
stop_watch "$WPID" TERM
check_eq "nothing is lost across the restart: the last lines are the feed's" \
	"$(grep '"key":"r' "$WORK/r.out" | last_lines /dev/stdin)" \
	"$(grep '"key":"r' "$WORK/rf.out" | last_lines /dev/stdin)"

# A reader that goes away, or stops reading.
status=0
t "$KVCTL" "$S" watch --since 0 2>/dev/null | head -n 1 >/dev/null || status=$?
check_eq "a watch whose reader closed the pipe ends with status 0" "$status" 0
mkfifo "$WORK/fifo"
sleep 300 <"$WORK/fifo" &
sleeper=$!
PIDS+=("$sleeper")
OUT=$WORK/fifo start_watch stalled --since 0 --values
stalled=$WPID
# The large value fills the pipe (64 KiB): the watcher waits to write.
pipe_full() {
	local w
	w=$(sed -n 's/^wchar: //p' "/proc/$(pgrep -P "$stalled")/io") && [ "$w" -ge 65536 ]
}
check "a watch whose reader stops reading fills the pipe" within 10000 pipe_full
stop_watch "$stalled" TERM
check_eq "a watch stalled on a reader that stopped reading ends on SIGTERM with status 0" \
	"$STATUS" 0
kill "$sleeper" 2>/dev/null || true

# Refusals.
check_refused "--since past the feed head is refused" 1 \
	"kvctl: --since 999999 is past the store's last change (seq $(kv "$S" stats | sed -n 's/.*"feed_head": \([0-9]*\).*/\1/p')): not a seq of this store" \
	"$KVCTL" "$S" watch --since 999999
check_refused "a --since that is not a number is a usage error" 2 \
	"kvctl: invalid --since 'x': expected a seq, 0 or more" "$KVCTL" "$S" watch --since x
check_refused "a negative --since is a usage error" 2 \
	"kvctl: invalid --since '-1': expected a seq, 0 or more" "$KVCTL" "$S" watch --since -1

# Resuming from before the tombstone collection horizon.
check "tombstones are collected" t "$GC_TOMBSTONES" "$S" 0
start_watch gc --since 1
stop_watch "$WPID" TERM
check "resuming from before the collection horizon warns that deletes may be missing" \
	grep -q "^kvctl: deletes up to seq [0-9]* were collected" "$WORK/gc.err"

finish
