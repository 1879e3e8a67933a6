#!/usr/bin/env bash
# test_kill: kill -9 in the middle of a transfer of big values (two to a
# batch), of the sender, of the receiver, and of a receiving client pulling
# through a remote shell.  Every time the store holds whole batches only
# (`kvctl check` clean), and a rerun resumes where the last committed batch
# ended (it sends exactly the records that had not arrived) and converges.
. "$(dirname "$0")/lib.sh"

SRC=$WORK/src
NBIG=12
head -c $((12 * 1024 * 1024)) /dev/urandom >"$WORK/big"
for i in $(seq 1 $NBIG); do
	kvctl "$SRC" put "big:$i" --path "$WORK/big" 2>/dev/null
done
for i in $(seq 1 50); do kvctl "$SRC" put "small:$i" "value $i"; done
TOTAL=$((NBIG + 50))

# descendants PID: the pids of PID's children, grandchildren...
descendants() {
	local c
	for c in $(pgrep -P "$1" || true); do
		echo "$c"
		descendants "$c"
	done
}

# receiver_pid PID: the kvsync process among PID's descendants.
kvsync_below() {
	local p
	for p in $(descendants "$1"); do
		if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = kvsync ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# until_partial DST: wait until DST holds its first big value.
until_partial() {
	local i size
	for i in $(seq 1 1000); do
		size=$(stat -c %s "$1/data.mdb" 2>/dev/null || echo 0)
		[ "$size" -gt $((12 * 1024 * 1024)) ] && return 0
		sleep 0.01
	done
	return 1
}

# scenario NAME VICTIM SRC-ARG DST [OPTS...]: start the sync, kill VICTIM
# (client or receiver) once DST has a value, then rerun.
scenario() {
	local name=$1 victim=$2 src=$3 dst=$4 pid target keys rc=0
	shift 4
	timeout --foreground 120 "$KVSYNC" "$@" "$src" "$dst" 2>"$WORK/$name.log" &
	pid=$!
	PIDS+=("$pid")
	if ! until_partial "$dst"; then
		not_ok "$name: the transfer began"
		wait "$pid" || true
		return
	fi
	target=$(kvsync_below "$pid") || target=""
	if [ "$victim" != client ] && [ -n "$target" ]; then
		target=$(kvsync_below "$target") || target=""
	fi
	if [ -z "$target" ]; then
		not_ok "$name: found the process to kill"
		wait "$pid" || true
		return
	fi
	kill -KILL "$target"
	wait "$pid" || rc=$?
	# An orphaned peer may still be committing what it had received.
	timeout 10 tail --pid="$target" -f /dev/null 2>/dev/null || true
	for p in $(descendants "$pid"); do timeout 10 tail --pid="$p" -f /dev/null || true; done
	keys=$(stat_field "$dst" keys)
	if [ "$keys" -lt "$TOTAL" ]; then
		ok "$name: killed mid-transfer ($keys of $TOTAL records arrived)"
	else
		not_ok "$name: killed mid-transfer (all $TOTAL records had arrived already)"
	fi
	if [ "$victim" = client ]; then
		check_eq "$name: the client died of the kill" "$rc" 137
	else
		check_eq "$name: the surviving client reports a connection error" "$rc" 3
	fi
	check "$name: kvctl check is clean on the destination after the kill" \
		bash -c '"$0" "$1" check >/dev/null' "$KVCTL" "$dst"
	rc=0
	t "$KVSYNC" --stats "$@" "$src" "$dst" >"$WORK/$name.rerun" 2>>"$WORK/$name.log" || rc=$?
	check_eq "$name: the rerun succeeds" "$rc" 0
	# The committed batches are a prefix of the feed, their watermark its end.
	check_eq "$name: the rerun resumes exactly: it sends just the records that had not arrived" \
		"$(stats_field "$WORK/$name.rerun" "Number of keys transferred")" "$((TOTAL - keys))"
	check "$name: kvctl check is clean on both stores" \
		bash -c '"$0" "$1" check >/dev/null && "$0" "$2" check >/dev/null' "$KVCTL" "$SRC" "$dst"
	same_export "$name: both stores export the same namespace" "$SRC" "$dst"
	check "$name: --check finds them converged" kvsync --check "$SRC" "$dst"
}

scenario sender client "$SRC" "$WORK/dst1"
scenario receiver receiver "$SRC" "$WORK/dst2"
scenario pull-client client "host:$SRC" "$WORK/dst3" \
	-e "$SYNC_DIR/fake-rsh.sh" --kvsync-path "$KVSYNC"
scenario pull-server receiver "host:$SRC" "$WORK/dst4" \
	-e "$SYNC_DIR/fake-rsh.sh" --kvsync-path "$KVSYNC"
check_eq "the values arrived intact" \
	"$(kvctl "$WORK/dst1" get "big:$NBIG" | cksum)" "$(cksum <"$WORK/big")"
finish
