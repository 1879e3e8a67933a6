#!/usr/bin/env bash
# test_space: kvsync into a store on a full disk.  DST lives on a 16 MiB
# tmpfs that a filler file has filled; SRC has a value that cannot fit.
# Both a local sync and a push to `kvsync --server` (through a stand-in
# for ssh) fail with "no space left on device" and the store error's exit
# code 4 (never a signal), DST stays clean and keeps what it had, and once
# the filler is removed the same sync completes and DST equals SRC.
. "$(dirname "$0")/lib.sh"

RSH=$SYNC_DIR/fake-rsh.sh
FS=$WORK/fs
SRC=$WORK/src
DST=$FS/dst
small_fs "$FS" 16m

head -c $((4 << 20)) /dev/urandom >"$WORK/big"
kvctl "$SRC" put k1 one
kvctl "$SRC" put k2 two
check "a first sync into the small filesystem works" kvsync "$SRC" "$DST"

# full_disk HOW CMD...: CMD syncs SRC to DST.
full_disk() {
	local how=$1
	shift
	fill_fs "$FS"
	check_no_space "$how: the sync into a full disk says so and exits 4" 4 "$@"
	check "$how: kvctl check of DST is clean" kvctl "$DST" check
	check_eq "$how: DST keeps what it had" "$(kvctl "$DST" get k1)" one
	rm -f "$FS/filler"
	check "$how: with space freed, the same sync completes" "$@"
	same_export "$how: DST now equals SRC" "$SRC" "$DST"
	check "$how: kvctl check of DST is clean at the end" kvctl "$DST" check
}

kvctl "$SRC" put big --path "$WORK/big"
kvctl "$SRC" put k3 three
full_disk "local" kvsync "$SRC" "$DST"

kvctl "$SRC" put big2 --path "$WORK/big"
kvctl "$SRC" put k4 four
full_disk "push to --server" kvsync -e "$RSH" --kvsync-path "$KVSYNC" "$SRC" "host:$DST"
finish
