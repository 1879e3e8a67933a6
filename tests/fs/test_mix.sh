#!/usr/bin/env bash
# test_mix: the fsstress-like load of tests/bench/fsops.c (`fsops mix`)
# on a fresh mount, several seeds, 4 processes each: creates, writes at
# random offsets, truncates, renames, removals, mkdir and rmdir, chmod,
# chown, xattrs and fsyncs in parallel, every result checked against each
# process's model of its tree (errno, sizes, bytes, listings).  It found
# directories emptied through the mount vanishing when the watcher
# reported an older write under them after they were kept.
. "$(dirname "$0")/lib.sh"

: "${FSOPS:?FSOPS must name the fsops binary}"
SEEDS=${MIX_SEEDS:-"24 25 26 27 28 29 30 31"}
OPS=${MIX_OPS:-3000}

for seed in $SEEDS; do
	S=$WORK/store-$seed
	M=$WORK/mnt-$seed
	mount_kvfs "$S" "$M"
	if out=$(T_SECONDS=300 run "$FSOPS" mix "$M" "$OPS" 4 "$seed" 2>&1); then
		ok "seed $seed: $OPS ops x 4 processes agree with the model ($out ops/s)"
	else
		not_ok "seed $seed: $OPS ops x 4 processes agree with the model"
		printf '%s\n' "$out" | head -n 20 | sed 's/^/# /'
	fi
	check "seed $seed: kvctl check accepts the store" "$KVCTL" "$S" check
done

finish
