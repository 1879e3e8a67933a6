#!/usr/bin/env bash
# test_space: a kvfs mount of a store on a full disk.  The store lives on a
# 16 MiB tmpfs that a filler file has filled.  Writing a large file through
# the mount fails with ENOSPC ("No space left on device") at the call that
# commits it (fsync, or close without one) and stores nothing; the daemon
# stays up (the mount answers, earlier files read back whole); a file can
# still be removed; kvctl check is clean; and once the filler is removed
# the same writes succeed through the same daemon, with no restart.  The
# second round writes 8 MiB, not 4: the store keeps the pages the first
# round's file freed and reuses them, so 4 MiB would fit without the disk.
. "$(dirname "$0")/lib.sh"
: "${WRITE_CLOSE:?WRITE_CLOSE must name the write_close helper}"

FS=$WORK/fs
S=$FS/store
M=$WORK/mnt
small_fs "$FS" 16m
t "$KVCTL" "$S" put seed x >/dev/null 2>&1
mount_kvfs "$S" "$M"

head -c $((256 << 10)) /dev/urandom >"$WORK/mid"
t cp "$WORK/mid" "$M/mid"
echo one >"$M/one"
echo two >"$M/two"
t sync -f "$M/one"

# full_disk HOW MIB ARGS...: write_close of a file of MIB MiB with ARGS on a
# full disk.
full_disk() {
	local how=$1 mib=$2
	shift 2
	fill_fs "$FS"
	check_fails "$how: a $mib MiB file on the full disk fails with ENOSPC" \
		"No space left on device" "$WRITE_CLOSE" "$M/big" $((mib << 20)) "$@"
	check "$how: the daemon is alive" kill -0 "$KVFS_DAEMON_PID"
	check "$how: the mount still answers" mountpoint -q "$M"
	check "$how: an earlier 256 KiB file reads back whole" cmp "$WORK/mid" "$M/mid"
	check_eq "$how: an earlier small file reads back" "$(t cat "$M/one")" one
	check "$how: kvctl check is clean" t "$KVCTL" "$S" check
	check "$how: rm works on the full disk" rm "$M/two"
	check "$how: the removed file is gone" test ! -e "$M/two"
	rm -f "$FS/filler"
	check "$how: with space freed, the same write succeeds" \
		"$WRITE_CLOSE" "$M/big" $((mib << 20)) "$@"
	check_eq "$how: and the file has its size" "$(stat -c %s "$M/big")" $((mib << 20))
	check "$how: kvctl check is clean at the end" t "$KVCTL" "$S" check
	rm -f "$M/big"
	echo two >"$M/two"
}

full_disk "fsync" 4 fsync
full_disk "close" 8
finish
