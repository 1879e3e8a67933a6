#!/usr/bin/env bash
# bench_kvsync: kvsync against rsync -aX, measured in the same run on the
# same data, printing ratios.  Not a test: nothing is asserted.
#
#   bench_kvsync.sh [--quick]
#
# Data: N files of 100 bytes in N/100 directories on tmpfs, and the same N
# keys (dir:file) in a store, also on tmpfs.  Measured:
#   1. initial sync: kvsync SRC DST into an empty store, against rsync -aX
#      between two tmpfs directories (and between two kvfs mounts when the
#      kvfs binary is built and FUSE is there);
#   2. incremental sync of 100 changed keys in the N-key namespace, against
#      rsync -aX of the same change (over the mounts when there are mounts,
#      else over tmpfs);
#   3. --watch propagation latency over loopback (a `kvsync serve` daemon
#      and a --watch client): p50 and p99 over W writes.
# Goals: (1) kvsync faster than rsync on tmpfs; (2) >= 20x faster than
# rsync; (3) p99 < 200 ms.  N = 100000, W = 1000; --quick: N = 10000, W = 100.
#
# Environment: KVSYNC, KVCTL (meson sets them; else the build-*/ binaries
# next to this script's tree), BUILD_DIR for kvfs.  Build without
# sanitizers for figures worth quoting.
set -euo pipefail
export LC_ALL=C

N=100000 W=1000
if [ "${1:-}" = --quick ]; then
	N=10000 W=100
fi
here=$(cd "$(dirname "$0")/../.." && pwd)
: "${KVSYNC:=$here/build/tools/kvsync/kvsync}"
: "${KVCTL:=$here/build/tools/kvctl/kvctl}"
KVFS=${KVFS:-${BUILD_DIR:-$here/build}/fs/kvfs}
for b in "$KVSYNC" "$KVCTL"; do
	[ -x "$b" ] || { echo "bench_kvsync: $b is not built" >&2; exit 1; }
done
command -v rsync >/dev/null || { echo "bench_kvsync: rsync is missing" >&2; exit 1; }
if ldd "$KVSYNC" 2>/dev/null | grep -q libasan; then
	echo "# note: $KVSYNC is built with AddressSanitizer; figures are pessimistic"
fi

base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
W_DIR=$(mktemp -d "$base/bench-kvsync.XXXXXX")
pids=()
mounts=()
cleanup() {
	local m p
	for m in "${mounts[@]}"; do
		timeout 30 fusermount3 -u "$m" 2>/dev/null || timeout 10 fusermount3 -uz "$m" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true; done
	rm -rf "$W_DIR"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'; }
# timed VAR CMD...: run CMD under a timeout, put its wall time in VAR.
timed() {
	local var=$1 t0 t1
	shift
	t0=$(now)
	timeout 1800 "$@" >/dev/null 2>>"$W_DIR/commands.log"
	t1=$(now)
	printf -v "$var" '%s' "$(elapsed "$t0" "$t1")"
}

value() { # value I: 100 bytes, different for every I
	printf '%-100.100s' "value of key $1 ........................................................................................"
}

echo "# preparing $N files of 100 bytes in $((N / 100)) directories, and $N keys"
TREE=$W_DIR/tree SRC=$W_DIR/src
mkdir -p "$TREE"
for ((d = 0; d < N / 100; d++)); do
	dir=$(printf 'd%04d' "$d")
	mkdir "$TREE/$dir"
	for ((f = 0; f < 100; f++)); do
		value "$dir:$f" >"$TREE/$dir/f$f"
	done
done
# The same namespace as bulk files of 10,000 pairs (kvctl's limit).
awk -v n="$N" -v dir="$W_DIR" 'BEGIN {
	file = ""
	for (i = 0; i < n; i++) {
		if (i % 10000 == 0) {
			if (file != "") { print "]" > file; close(file) }
			file = sprintf("%s/bulk%03d.json", dir, i / 10000)
			printf "[" > file
			sep = ""
		}
		d = sprintf("d%04d", int(i / 100)); f = i % 100
		v = sprintf("%-100.100s", "value of key " d ":" f " ........................................................................................")
		printf "%s{\"key\":\"%s:f%d\",\"value\":\"%s\"}", sep, d, f, v > file
		sep = ",\n"
	}
	print "]" > file; close(file)
}'
for f in "$W_DIR"/bulk*.json; do
	timeout 600 "$KVCTL" "$SRC" bulk put "$f" >/dev/null 2>&1
done

have_kvfs=0
if [ -x "$KVFS" ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
	have_kvfs=1
fi
mount_kvfs() { # mount_kvfs STORE MNT
	mkdir -p "$2"
	"$KVFS" -f -o create "$1" "$2" 2>>"$W_DIR/kvfs.log" &
	pids+=($!)
	mounts+=("$2")
	for _ in $(seq 100); do
		timeout 5 mountpoint -q "$2" && return 0
		sleep 0.1
	done
	echo "bench_kvsync: kvfs did not mount $2" >&2
	return 1
}

echo
echo "== initial sync of $N keys"
timed t_kvsync "$KVSYNC" "$SRC" "$W_DIR/dst"
timed t_rsync rsync -aX "$TREE/" "$W_DIR/tree-copy/"
echo "kvsync SRC DST                   $t_kvsync s"
echo "rsync -aX tmpfs -> tmpfs         $t_rsync s   kvsync is $(ratio "$t_rsync" "$t_kvsync")x faster (goal > 1)"
if [ "$have_kvfs" = 1 ]; then
	if mount_kvfs "$SRC" "$W_DIR/mnt-src" && mount_kvfs "$W_DIR/mnt-dst-store" "$W_DIR/mnt-dst"; then
		timed t_rsync_fs rsync -aX "$W_DIR/mnt-src/" "$W_DIR/mnt-dst/"
		echo "rsync -aX kvfs -> kvfs           $t_rsync_fs s   kvsync is $(ratio "$t_rsync_fs" "$t_kvsync")x faster"
	else
		have_kvfs=0
	fi
fi

echo
echo "== incremental sync of 100 changed keys among $N"
awk -v n="$N" 'BEGIN {
	printf "["
	for (i = 0; i < 100; i++) {
		k = int(i * n / 100); d = sprintf("d%04d", int(k / 100)); f = k % 100
		printf "%s{\"key\":\"%s:f%d\",\"value\":\"changed %d\"}", (i ? ",\n" : ""), d, f, i
	}
	print "]"
}' >"$W_DIR/change.json"
timeout 600 "$KVCTL" "$SRC" bulk put "$W_DIR/change.json" >/dev/null 2>&1
for i in $(seq 0 99); do
	k=$((i * N / 100))
	printf 'changed %d' "$i" >"$TREE/$(printf 'd%04d' $((k / 100)))/f$((k % 100))"
done
timed t_kvsync_inc "$KVSYNC" "$SRC" "$W_DIR/dst"
timed t_rsync_inc rsync -aX "$TREE/" "$W_DIR/tree-copy/"
echo "kvsync SRC DST                   $t_kvsync_inc s"
echo "rsync -aX tmpfs -> tmpfs         $t_rsync_inc s   kvsync is $(ratio "$t_rsync_inc" "$t_kvsync_inc")x faster"
peer=tmpfs
peer_t=$t_rsync_inc
if [ "$have_kvfs" = 1 ]; then
	timed t_rsync_fs_inc rsync -aX "$W_DIR/mnt-src/" "$W_DIR/mnt-dst/"
	echo "rsync -aX kvfs -> kvfs           $t_rsync_fs_inc s   kvsync is $(ratio "$t_rsync_fs_inc" "$t_kvsync_inc")x faster"
	peer=kvfs
	peer_t=$t_rsync_fs_inc
fi
echo "goal: >= 20x faster than rsync over $peer: $(ratio "$peer_t" "$t_kvsync_inc")x"

echo
echo "== --watch propagation latency over loopback, $W writes"
LSRC=$W_DIR/lat-src LDST=$W_DIR/lat-dst
timeout 60 "$KVCTL" "$LSRC" put warm:up 1 2>/dev/null
"$KVSYNC" serve --listen 127.0.0.1:0 "$LSRC" 2>"$W_DIR/serve.log" &
pids+=($!)
for _ in $(seq 100); do
	grep -q serving "$W_DIR/serve.log" && break
	sleep 0.1
done
port=$(sed -n 's/.* on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$W_DIR/serve.log")
# Each applied record prints "+ KEY" on the client; stamp each line as it
# arrives.
mkfifo "$W_DIR/lines"
while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done \
	<"$W_DIR/lines" >"$W_DIR/arrivals" &
"$KVSYNC" --watch -v "kvsync://127.0.0.1:$port" "$LDST" >"$W_DIR/lines" 2>"$W_DIR/watch.log" &
pids+=($!)
for _ in $(seq 100); do
	grep -q warm:up "$W_DIR/arrivals" 2>/dev/null && break
	sleep 0.1
done
for ((i = 0; i < W; i++)); do
	printf '%s + lat:%d\n' "$EPOCHREALTIME" "$i" >>"$W_DIR/sent"
	timeout 60 "$KVCTL" "$LSRC" put "lat:$i" "$i"
	sleep 0.005
done
for _ in $(seq 100); do
	[ "$(grep -c ' + lat:' "$W_DIR/arrivals" || true)" -ge "$W" ] && break
	sleep 0.1
done
awk 'NR == FNR { sent[$3] = $1; next } $2 == "+" && ($3 in sent) { print ($1 - sent[$3]) * 1000 }' \
	"$W_DIR/sent" "$W_DIR/arrivals" | sort -n >"$W_DIR/latency"
got=$(wc -l <"$W_DIR/latency")
pct() { awk -v p="$1" -v n="$got" 'NR == int((n - 1) * p / 100) + 1 { printf "%.1f", $1 }' "$W_DIR/latency"; }
echo "$got of $W writes arrived; latency from the start of kvctl put to the"
echo "commit on the receiving side: p50 $(pct 50) ms, p99 $(pct 99) ms, max $(pct 100) ms (goal: p99 < 200 ms)"
