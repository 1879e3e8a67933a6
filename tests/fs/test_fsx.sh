#!/usr/bin/env bash
# test_fsx: the model-based random exerciser (tests/fs/fsx.c) on a real
# mount.  Four seeds of FSX_OPS operations each (default 12500: 50k in all)
# check every read, size, inode number and listing against a model with
# ext4's semantics (PRODUCT.md section 3.2, "POSIX as tools expect it");
# then FSX_ROUNDS rounds (default 250 per pair, 2 pairs) race the last
# close of a file against its unlink and its rename: a removed name never
# comes back, and a renamed file's data follows it.  FSX_SEEDS overrides
# the seeds.  A failing seed prints its op log and a command to rerun it.
. "$(dirname "$0")/lib.sh"

: "${FSX:?FSX must name the fsx binary}"
OPS=${FSX_OPS:-12500}
ROUNDS=${FSX_ROUNDS:-250}
SEEDS=${FSX_SEEDS:-"1 2 3 4"}
# A hang guard per run, not a timed assertion: 12500 ops take a few
# seconds under ASan; it grows with FSX_OPS (mount_kvfs stops the daemon
# after 900 s, so longer runs are for fsx by hand on a mount).
SECS=$((60 + OPS / 250))

S=$WORK/store
M=$WORK/mnt
mount_kvfs "$S" "$M"

# fsx_run DESC ARGS...: one fsx run in a directory of its own on the mount.
fsx_run() {
	local desc=$1 dir status=0
	shift
	dir=$M/$(echo "$desc" | tr -c 'a-z0-9\n' '_')
	mkdir -p "$dir"
	timeout "$SECS" "$FSX" "$@" "$dir" >"$WORK/fsx.out" 2>&1 || status=$?
	if [ "$status" -eq 0 ]; then
		ok "$desc"
	else
		not_ok "$desc (exit $status)"
	fi
	sed 's/^/# /' "$WORK/fsx.out" | head -n 60
}

for seed in $SEEDS; do
	fsx_run "seed $seed: $OPS random ops agree with the model" --seed "$seed" --ops "$OPS"
done
fsx_run "unlink and rename racing the last close: $ROUNDS rounds x 2 pairs" \
	--race --threads 4 --seed 1 --ops "$ROUNDS"
check "the mount still answers" t ls "$M"
finish
