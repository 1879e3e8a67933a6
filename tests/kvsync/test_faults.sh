#!/usr/bin/env bash
# test_faults: a store that cannot start a read transaction (LMDB's reader
# table full), at each read transaction of a sync in turn, on either side,
# through the fail_txn shim.  In a push, a pull through a remote shell, a
# digest sync, --both, a dry run and a check, every run either completes or
# ends as a store error (exit 4) with a message: never a crash, never a
# protocol error, and the stores hold the batch wholly or not at all.
. "$(dirname "$0")/lib.sh"
: "${FAIL_TXN:?FAIL_TXN must name the fail_txn shim}"

SRC=$WORK/src DST=$WORK/dst
synced_pair "$SRC" "$DST" f: 30
kvctl "$SRC" delete f:1
kvctl "$SRC" put f:2 changed
kvctl "$DST" put only:dst here
cp -a "$SRC" "$WORK/src.orig"
cp -a "$DST" "$WORK/dst.orig"

fresh() {
	rm -rf "$SRC" "$DST"
	cp -a "$WORK/src.orig" "$SRC"
	cp -a "$WORK/dst.orig" "$DST"
}

# faults NAME OK-EXIT ARGS...: run `kvsync ARGS` with its Nth read
# transaction failing, for N = 1, 2, ... until no transaction failed (N
# is past the last one).  OK-EXIT is the exit status of a clean run.
faults() {
	local name=$1 want=$2 n rc injected=0 bad=0 s
	shift 2
	fresh
	t "$KVSYNC" "$@" >/dev/null 2>&1 || true
	for s in "$SRC" "$DST"; do kvctl "$s" export >"$s.good"; done
	for n in $(seq 1 60); do
		fresh
		for s in "$SRC" "$DST"; do kvctl "$s" export >"$s.before"; done
		rm -f "$WORK/mark"
		rc=0
		t env FAIL_TXN_AT="$n" FAIL_TXN_MARK="$WORK/mark" LD_PRELOAD="$FAIL_TXN" \
			ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
			"$KVSYNC" "$@" >"$WORK/run.out" 2>"$WORK/run.err" || rc=$?
		[ -e "$WORK/mark" ] || break
		injected=$((injected + 1))
		if [ "$rc" -ne 4 ] && [ "$rc" -ne "$want" ]; then
			echo "#   $name, read transaction $n failing: exit $rc"
			bad=$((bad + 1))
		elif grep -q -e 'protocol error' -e 'runtime error' -e 'Sanitizer' -e 'did not greet' \
			"$WORK/run.err"; then
			echo "#   $name, read transaction $n failing: says $(head -n 3 "$WORK/run.err")"
			bad=$((bad + 1))
		elif [ "$rc" -eq 4 ] && ! grep -q '^kvsync: .*cannot .*: Resource temporarily unavailable' \
			"$WORK/run.err"; then
			echo "#   $name, read transaction $n failing: no store error message"
			bad=$((bad + 1))
		fi
		for s in "$SRC" "$DST"; do
			kvctl "$s" export >"$s.after"
			if ! cmp -s "$s.after" "$s.before" && ! cmp -s "$s.after" "$s.good"; then
				echo "#   $name, read transaction $n failing: ${s##*/} holds part of a batch"
				bad=$((bad + 1))
			fi
			if ! kvctl "$s" check >/dev/null 2>&1; then
				echo "#   $name, read transaction $n failing: ${s##*/} fails kvctl check"
				bad=$((bad + 1))
			fi
		done
	done
	if [ "$injected" -gt 0 ] && [ "$bad" -eq 0 ]; then
		ok "$name: each of $injected read transactions failing ends cleanly"
	else
		not_ok "$name: each read transaction failing ends cleanly ($injected injected, $bad bad)"
	fi
}

faults push 0 --stats "$SRC" "$DST"
faults "pull through a remote shell" 0 \
	-e "$SYNC_DIR/fake-rsh.sh" --kvsync-path "$KVSYNC" "host:$SRC" "$DST"
faults "digest sync" 0 --full "$SRC" "$DST"
faults both 0 --both "$SRC" "$DST"
faults "dry run" 0 -n -v "$SRC" "$DST"
faults check 1 --check "$SRC" "$DST"

fresh
check_exit "without a fault the sync succeeds" 0 kvsync --both "$SRC" "$DST"
check_exit "and the stores converge" 0 kvsync --check "$SRC" "$DST"
finish
