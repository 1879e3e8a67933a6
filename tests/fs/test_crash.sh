#!/usr/bin/env bash
# test_crash: the daemon killed with SIGKILL leaves a store that
# `kvctl check` accepts, holding every write that was fsync'd (with
# sync=always, batch and none) and, for a write still buffered, the old
# value whole; SIGTERM and SIGINT end the daemon cleanly and commit the
# writes still open.
. "$(dirname "$0")/lib.sh"

# fsync_write FILE VALUE: write VALUE to FILE, fsync, close.
fsync_write() {
	t python3 -c 'import os,sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, sys.argv[2].encode())
os.fsync(fd)
os.close(fd)' "$1" "$2"
}

for mode in always batch none; do
	S=$WORK/store-$mode
	M=$WORK/mnt-$mode
	t "$KVCTL" "$S" put pending old-value
	mount_kvfs "$S" "$M" -o sync=$mode
	pid=$KVFS_PID daemon=$KVFS_DAEMON_PID
	for i in $(seq 20); do fsync_write "$M/key$i" "value $i"; done
	mkdir -p "$M/dir/sub"
	fsync_write "$M/dir/sub/leaf" leaf
	t dd if=/dev/urandom of="$WORK/blob-$mode" bs=64k count=16 status=none
	t dd if="$WORK/blob-$mode" of="$M/blob" bs=64k conv=fsync status=none
	# A writer in the middle of rewriting a value when the daemon dies.
	python3 -c 'import os,sys,time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"half of a new val")
time.sleep(30)' "$M/pending" &
	writer=$!
	sleep 0.5
	kill -KILL "$daemon"
	wait "$pid" 2>/dev/null || true
	kill "$writer" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true
	t fusermount3 -uz "$M" || true

	check "sync=$mode: kvctl check accepts the store after kill -9" "$KVCTL" "$S" check
	missing=0
	for i in $(seq 20); do
		[ "$(t "$KVCTL" "$S" get "key$i")" = "value $i" ] || missing=$((missing + 1))
	done
	check_eq "sync=$mode: every fsync'd write is there" "$missing" "0"
	check_eq "sync=$mode: in directories too" "$(t "$KVCTL" "$S" get dir:sub:leaf)" "leaf"
	check "sync=$mode: a 1 MiB value fsync'd by dd is whole" \
		sh -c '"$KVCTL" "$0" get blob | cmp -s - "$1"' "$S" "$WORK/blob-$mode"
	check_eq "sync=$mode: a value being rewritten keeps its old value" \
		"$(t "$KVCTL" "$S" get pending)" "old-value"
done

for sig in TERM INT; do
	S=$WORK/store-$sig
	M=$WORK/mnt-$sig
	mount_kvfs "$S" "$M"
	pid=$KVFS_PID daemon=$KVFS_DAEMON_PID
	exec 3>"$M/open"
	printf 'written before SIG%s' "$sig" >&3
	kill -"$sig" "$daemon"
	check "SIG$sig: the daemon exits" within 10000 sh -c '! kill -0 "$0" 2>/dev/null' "$pid"
	kill -KILL "$daemon" 2>/dev/null || true
	status=0
	wait "$pid" || status=$?
	check_eq "SIG$sig: exit status 0" "$status" "0"
	exec 3>&-
	check_eq "SIG$sig: the open write was committed" \
		"$(t "$KVCTL" "$S" get open)" "written before SIG$sig"
	check "SIG$sig: unmounted" sh -c '! mountpoint -q "$0"' "$M"
	check "SIG$sig: kvctl check accepts the store" "$KVCTL" "$S" check
done

finish
