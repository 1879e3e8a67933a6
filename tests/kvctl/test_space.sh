#!/usr/bin/env bash
# test_space: kvctl on a full disk.  A store on a 16 MiB tmpfs that a filler
# file has filled: a put that cannot fit fails with "no space left on
# device" and exit 1 (never a signal, never an I/O error), in both ways a
# disk fills up (no block left at all; some left but fewer than the value
# needs, where the filesystem takes a short write); the store stays clean
# and readable; a delete works; once the filler is removed the same put
# succeeds in a new process with nothing to repair.
. "$(dirname "$0")/lib.sh"

FS=$WORK/fs
S=$FS/store
small_fs "$FS" 16m

head -c $((4 << 20)) /dev/urandom >"$WORK/big"
head -c $((512 << 10)) /dev/urandom >"$WORK/mid"

# full_disk HOW FREE_KIB: a fresh store, a disk filled up to FREE_KIB, then
# the whole story.
full_disk() {
	local how=$1 out
	check "$how: a store on the small filesystem takes keys" kv "$S" put k1 one
	kv "$S" put k2 two
	kv "$S" put mid --path "$WORK/mid"
	fill_fs "$FS" "$2"
	check_no_space "$how: a put that cannot fit says so and exits 1" 1 \
		kv "$S" put big --path "$WORK/big"
	check "$how: kvctl check is clean" kv "$S" check
	check_eq "$how: earlier keys read back" "$(kv "$S" get k1)" one
	kv "$S" get mid >"$WORK/mid.out"
	check "$how: an earlier 512 KiB value reads back" cmp "$WORK/mid" "$WORK/mid.out"
	check "$how: get of the failed key says not found" \
		bash -c '! "$@"' _ timeout 60 "$KVCTL" "$S" get big
	check "$how: a delete works on the full disk" kv "$S" delete k2
	out=$(kv "$S" get k2 2>&1 || true)
	check_eq "$how: the deleted key is gone" "$out" "kvctl: key 'k2' not found"
	check "$how: kvctl check is clean after the delete" kv "$S" check
	rm -f "$FS/filler"
	check "$how: with space freed, the put succeeds" kv "$S" put big --path "$WORK/big"
	kv "$S" get big >"$WORK/big.out"
	check "$how: and the value reads back whole" cmp "$WORK/big" "$WORK/big.out"
	check "$how: kvctl check is clean at the end" kv "$S" check
	rm -rf "$S"
}

full_disk "no block left" 0
full_disk "fewer blocks left than the value needs" 2048
finish
