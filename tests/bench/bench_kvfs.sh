#!/usr/bin/env bash
# bench_kvfs: what a kvfs mount costs against a named peer measured in the
# same run: libfuse's passthrough_ll example (compiled here from the
# libfuse3-dev example source, never kept) over a tmpfs holding the same
# files, and that tmpfs read directly as a second reference.  The kvfs
# stores live on the same tmpfs, so neither side pays for a disk.  Both
# daemons run with their default options (passthrough_ll: -o source=DIR).
#
#   1. open+read+close of 5000 100-byte files in 50 directories (keys
#      dNN:fNNNN), several passes after a warm one; also with kvfs
#      -o direct_io (no page cache)
#   2. stat of the same files
#   3. create+write(100 B)+close of 5000 new files
#   4. readdir of a 5-entry directory: in a 200k-key store against a
#      1k-key store (kvfs against itself)
#   5. 25 MiB sequential write and read in 128 KiB blocks
#   6. the kvfs daemon's RSS after `find` over the 200k-key store and
#      after the kernel forgets the inodes, with passthrough_ll's cost per
#      inode as the peer
# and, to explain the figures, the FUSE requests each open+read+close and
# each create costs on either side (counted from -d output).
#
# Each figure is the best of 3 runs (BENCH_RUNS=N for more); the kvfs and
# peer runs alternate.  FUSE figures hang on how fast the CPUs wake the
# daemon and the caller: other work on the machine moves them a lot, so
# the header says the load average.  No figure is asserted: the exit
# status says only whether every operation worked.  Needs root (it mounts
# a tmpfs and drops the kernel's caches).
# --quick runs 10x smaller sizes, as a smoke run whose figures mean little.
#
# Run: meson test -C BUILD --benchmark --suite bench -v
# or:  KVFS=BUILD/fs/kvfs KVCTL=BUILD/tools/kvctl/kvctl \
#      FSOPS=BUILD/tests/bench/fsops tests/bench/bench_kvfs.sh [--quick]
set -euo pipefail

BENCH_NAME=bench_kvfs
# shellcheck source=tests/bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_options "$@"
bench_binaries
bench_need_root "it mounts a tmpfs and drops caches"

if ((quick)); then
	NDIRS=5 NFILES=500 READ_PASSES=2 STAT_PASSES=4
	BIG_DIRS=20 SMALL_KEYS=100 READDIR_ITERS=2000
	SEQ_BYTES=$((26214400 / 10)) PT_RSS_FILES=1000 COUNT_FILES=50
else
	NDIRS=50 NFILES=5000 READ_PASSES=10 STAT_PASSES=20
	BIG_DIRS=200 SMALL_KEYS=1000 READDIR_ITERS=20000
	SEQ_BYTES=26214400 PT_RSS_FILES=10000 COUNT_FILES=200
fi
FSIZE=100
KEYS_PER_BIG_DIR=1000
BIG_KEYS=$((BIG_DIRS * KEYS_PER_BIG_DIR + 5))
RUNS=${BENCH_RUNS:-3} # each figure the best of RUNS runs
DAEMON_LIMIT=1800 # no daemon outlives the benchmark's own time limit
# What fsops create writes, so the kvfs values and the tmpfs files match.
VALUE='abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu\n'

T=$(mktemp -d /tmp/bench_kvfs.XXXXXX)
TM=$T/tm                   # the tmpfs: sources and stores
LOG=$T/log
tmpfs_mounted=0

cleanup() {
	local rc=$?
	set +e
	unmount_all
	if ((tmpfs_mounted)); then
		timeout 30 umount "$TM" || timeout 30 umount -l "$TM"
	fi
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# best VAR MODE ARGS...: VAR becomes the larger of itself and one run's
# figure.
best() {
	local var=$1 v
	shift
	v=$(run "$@")
	printf -v "$var" '%s' "$(max "${!var}" "$v")"
}

# count_requests LOG FROM OPS: the FUSE requests logged by -d after line
# FROM, per operation, busiest first: "4.00 (OPEN 1.00, READ 1.00, ...)".
count_requests() {
	tail -n +"$(($2 + 1))" "$1" |
		awk -v ops="$3" '
		match($0, /opcode: [A-Z_]+/) { n[substr($0, RSTART + 8, RLENGTH - 8)]++; all++ }
		END {
			printf "%.2f (", all / ops
			sep = ""
			while (length(n)) {
				best = ""
				for (k in n) if (best == "" || n[k] > n[best]) best = k
				printf "%s%s %.2f", sep, best, n[best] / ops
				sep = ", "
				delete n[best]
			}
			printf ")"
		}'
}

# ============================================================== setup

mkdir -p "$TM" "$LOG"
: >"$LOG/setup"
timeout 30 mount -t tmpfs -o size=4g,mode=0755 tmpfs "$TM"
tmpfs_mounted=1
build_passthrough

paths_small_tree >"$T/paths"
sed 's,/,:,g' "$T/paths" >"$T/keys"
make_tree "$TM/src" "$T/paths"
bulk_put "$TM/kv" "$T/keys"
# create's new names, and the subset the request counts use
head -n "$COUNT_FILES" "$T/paths" >"$T/paths.count"

{
	awk -v nd="$BIG_DIRS" -v per="$KEYS_PER_BIG_DIR" \
		'BEGIN { for (d = 0; d < nd; d++) for (k = 0; k < per; k++) printf "b%03d:k%06d\n", d, d * per + k }'
	printf 'm:e%d\n' 0 1 2 3 4
} >"$T/keys.big"
{
	awk -v n="$((SMALL_KEYS - 5))" 'BEGIN { for (k = 0; k < n; k++) printf "b000:k%06d\n", k }'
	printf 'm:e%d\n' 0 1 2 3 4
} >"$T/keys.small"
bulk_put "$TM/big" "$T/keys.big"
bulk_put "$TM/small" "$T/keys.small"

KV=$T/mnt-kvfs PTM=$T/mnt-pt SRC=$TM/src
mode=full
((quick)) && mode=quick
# Other work on the machine moves every figure: say how busy it was.
read -r load _ </proc/loadavg
echo "kvfs benchmark ($mode): $NFILES files of $FSIZE B in $NDIRS directories; best of $RUNS runs;" \
	"peer: passthrough_ll over tmpfs, default options; kvfs stores on the same tmpfs;" \
	"load average $load on $(nproc) CPUs"

# ====================================== 1, 2: open+read+close and stat

mount_kvfs "$TM/kv" "$KV" "$LOG/kvfs"
mount_pt "$SRC" "$PTM" "$LOG/pt"
# Values go through the page cache once settled, a second after commit.
sleep 1.5

r_kv=0 r_pt=0 r_tm=0 s_kv=0 s_pt=0 s_tm=0
for ((r = 0; r < RUNS; r++)); do
	best r_kv read "$KV" "$T/paths" "$READ_PASSES" "$FSIZE"
	best r_pt read "$PTM" "$T/paths" "$READ_PASSES" "$FSIZE"
	best r_tm read "$SRC" "$T/paths" "$READ_PASSES" "$FSIZE"
done
for ((r = 0; r < RUNS; r++)); do
	best s_kv stat "$KV" "$T/paths" "$STAT_PASSES" "$FSIZE"
	best s_pt stat "$PTM" "$T/paths" "$STAT_PASSES" "$FSIZE"
	best s_tm stat "$SRC" "$T/paths" "$STAT_PASSES" "$FSIZE"
done
unmount_fuse "$KV"

mount_kvfs "$TM/kv" "$KV" "$LOG/kvfs" -o direct_io
r_dio=0
for ((r = 0; r < RUNS; r++)); do
	best r_dio read "$KV" "$T/paths" "$READ_PASSES" "$FSIZE"
	best r_pt read "$PTM" "$T/paths" "$READ_PASSES" "$FSIZE"
done
unmount_fuse "$KV"

echo "open+read+close: kvfs $(fmt "$r_kv") ops/s, passthrough_ll $(fmt "$r_pt") ops/s," \
	"ratio $(ratio "$r_kv" "$r_pt") (goal >= 2)"
echo "open+read+close: kvfs -o direct_io $(fmt "$r_dio") ops/s, passthrough_ll $(fmt "$r_pt") ops/s," \
	"ratio $(ratio "$r_dio" "$r_pt") (no goal: the strict mode)"
echo "open+read+close: tmpfs $(fmt "$r_tm") ops/s (reference; kvfs/tmpfs $(ratio "$r_kv" "$r_tm"))"
echo "stat: kvfs $(fmt "$s_kv") ops/s, passthrough_ll $(fmt "$s_pt") ops/s," \
	"ratio $(ratio "$s_kv" "$s_pt") (goal >= 1)"
echo "stat: tmpfs $(fmt "$s_tm") ops/s (reference; kvfs/tmpfs $(ratio "$s_kv" "$s_tm"))"

# ============================================ 3: create+write+close
# Every run creates new names (suffix .cR); between runs the kernel
# forgets the inodes, so passthrough_ll (an fd per inode) stays within
# the fd limit and both sides start alike.

mount_kvfs "$TM/kv" "$KV" "$LOG/kvfs"
c_kv=0 c_pt=0 c_tm=0
for ((r = 0; r < RUNS; r++)); do
	drop_caches 2
	best c_kv create "$KV" "$T/paths" ".c$r" "$FSIZE"
	best c_pt create "$PTM" "$T/paths" ".p$r" "$FSIZE"
	best c_tm create "$SRC" "$T/paths" ".t$r" "$FSIZE"
done
echo "create+write+close: kvfs $(fmt "$c_kv") ops/s, passthrough_ll $(fmt "$c_pt") ops/s," \
	"ratio $(ratio "$c_kv" "$c_pt") (goal >= 1)"
echo "create+write+close: tmpfs $(fmt "$c_tm") ops/s (reference; kvfs/tmpfs $(ratio "$c_kv" "$c_tm"))"

# ================================================ 5: sequential I/O
# Write: open, 128 KiB writes, close (kvfs commits the value at close).
# Read: the kernel's page cache is dropped before every read (echo 3 >
# drop_caches), so no read is served from pages a previous run left; the
# tmpfs's own pages are its storage and stay.

w_kv=0 w_pt=0 w_tm=0 q_kv=0 q_pt=0 q_tm=0
for ((r = 0; r < RUNS; r++)); do
	best w_kv seqwrite "$KV/big" "$SEQ_BYTES"
	best w_pt seqwrite "$PTM/big" "$SEQ_BYTES"
	best w_tm seqwrite "$SRC/big.tmpfs" "$SEQ_BYTES"
done
for ((r = 0; r < RUNS; r++)); do
	drop_caches 3
	best q_kv seqread "$KV/big" "$SEQ_BYTES"
	drop_caches 3
	best q_pt seqread "$PTM/big" "$SEQ_BYTES"
	best q_tm seqread "$SRC/big.tmpfs" "$SEQ_BYTES"
done
unmount_fuse "$KV"
mib=$(awk -v b="$SEQ_BYTES" 'BEGIN { printf "%g", b / 1048576 }')
echo "sequential write ${mib} MiB: kvfs $(fmt "$w_kv") MB/s, passthrough_ll $(fmt "$w_pt") MB/s," \
	"ratio $(ratio "$w_kv" "$w_pt"); tmpfs $(fmt "$w_tm") MB/s (reference)"
echo "sequential read ${mib} MiB (caches dropped first): kvfs $(fmt "$q_kv") MB/s," \
	"passthrough_ll $(fmt "$q_pt") MB/s, ratio $(ratio "$q_kv" "$q_pt"); tmpfs $(fmt "$q_tm") MB/s (reference)"

# ============================================ requests per operation
# Debug mounts (-d logs every request); a warm run first, then the counted
# one (whose own warm pass is counted too: 2 passes).  Releases are
# asynchronous: give them a moment to be logged.

# count_case ARRAY NAME LOG OPS MODE ARGS...: append to ARRAY what one
# fsops run costs in requests.
count_case() {
	local -n into=$1
	local name=$2 log=$3 ops=$4 from
	shift 4
	from=$(lines "$log")
	run "$@" >/dev/null
	sleep 1
	into+=("$name $(count_requests "$log" "$from" "$ops")")
}

req_read=() req_create=()
for side in kvfs kvfs-dio pt; do
	dlog=$LOG/debug-$side
	: >"$dlog"
	case $side in
	kvfs) mount_kvfs "$TM/kv" "$KV" "$dlog" -d; mnt=$KV name=kvfs; sleep 1.5 ;;
	kvfs-dio) mount_kvfs "$TM/kv" "$KV" "$dlog" -d -o direct_io; mnt=$KV name="kvfs -o direct_io" ;;
	pt) mnt=$T/mnt-ptd name=passthrough_ll; mount_pt "$SRC" "$mnt" "$dlog" -d ;;
	esac
	# shellcheck disable=SC2162 # fsops mode "read", not read(1)
	run read "$mnt" "$T/paths.count" 1 "$FSIZE" >/dev/null
	count_case req_read "$name" "$dlog" $((2 * COUNT_FILES)) \
		read "$mnt" "$T/paths.count" 1 "$FSIZE"
	if [[ $side != kvfs-dio ]]; then
		count_case req_create "$name" "$dlog" "$COUNT_FILES" \
			create "$mnt" "$T/paths.count" ".n" "$FSIZE"
	fi
	unmount_fuse "$mnt"
done
unmount_fuse "$PTM"
echo "FUSE requests per open+read+close: ${req_read[0]}; ${req_read[1]}; ${req_read[2]}"
echo "FUSE requests per create+write+close: ${req_create[0]}; ${req_create[1]}"

# ======================================================== 4: readdir

BIGM=$T/mnt-big SMALLM=$T/mnt-small
mount_kvfs "$TM/big" "$BIGM" "$LOG/kvfs-big"
mount_kvfs "$TM/small" "$SMALLM" "$LOG/kvfs-small"
d_big=0 d_small=0
for ((r = 0; r < RUNS; r++)); do
	best d_big readdir "$BIGM/m" "$READDIR_ITERS" 5
	best d_small readdir "$SMALLM/m" "$READDIR_ITERS" 5
done
unmount_fuse "$BIGM"
unmount_fuse "$SMALLM"
echo "readdir of a 5-entry directory: kvfs in a $(fmt "$BIG_KEYS")-key store $(fmt "$d_big") listings/s," \
	"in a $(fmt "$SMALL_KEYS")-key store $(fmt "$d_small") listings/s," \
	"time ratio $(ratio "$d_small" "$d_big") (goal <= 2)"

# ============================================================ 6: RSS
# VmRSS counts the pages of the store's map the daemon touched (shared
# tmpfs pages, RssShmem); RssAnon is the daemon's own memory, the inode
# table among it.  A plain `find` reads directories only (the kernel looks
# up the few names READDIRPLUS returns); `find -size +0` stats every name,
# so the kernel then holds an inode, and the daemon a table entry, for
# each key.

# rss PID: "VmRSS RssAnon" in KiB
rss() {
	awk '$1 == "VmRSS:" { v = $2 } $1 == "RssAnon:" { a = $2 } END { print v, a }' "/proc/$1/status"
}

mount_kvfs "$TM/big" "$BIGM" "$LOG/kvfs-rss"
pid=$(daemon_pid "$BIGM")
read -r m_base a_base < <(rss "$pid")
n=$(timeout 600 find "$BIGM" | wc -l)
want=$((BIG_KEYS + BIG_DIRS + 2))
[[ $n -eq $want ]] || die "find listed $n names in the big store, expected $want"
read -r m_find a_find < <(rss "$pid")
n=$(timeout 600 find "$BIGM" -size +0 -type f | wc -l)
[[ $n -eq $BIG_KEYS ]] || die "find -size +0 found $n files in the big store, expected $BIG_KEYS"
read -r m_stat a_stat < <(rss "$pid")
drop_caches 2
# The forgets arrive in the background; the daemon's watcher hands the
# memory back within a period.
sleep 1
read -r m_forgot a_forgot < <(rss "$pid")
# Once more: memory freed at forget and reused shows as no growth.
n=$(timeout 600 find "$BIGM" -size +0 -type f | wc -l)
[[ $n -eq $BIG_KEYS ]] || die "find -size +0 found $n files in the big store, expected $BIG_KEYS"
read -r m_again a_again < <(rss "$pid")
unmount_fuse "$BIGM"

# The peer, on a tree as large as its fd limit allows: passthrough_ll
# holds an O_PATH descriptor for every inode the kernel knows.
awk -v n="$PT_RSS_FILES" 'BEGIN { for (k = 0; k < n; k++) printf "b%03d/k%06d\n", k / 1000, k }' \
	>"$T/paths.rss"
make_tree "$TM/rss" "$T/paths.rss"
mount_pt "$TM/rss" "$PTM" "$LOG/pt-rss"
pid=$(daemon_pid "$PTM")
read -r _ p_base < <(rss "$pid")
n=$(timeout 600 find "$PTM" -size +0 -type f | wc -l)
[[ $n -eq $PT_RSS_FILES ]] || die "find -size +0 found $n files under passthrough_ll, expected $PT_RSS_FILES"
read -r _ p_stat < <(rss "$pid")
drop_caches 2
read -r _ p_forgot < <(rss "$pid")
unmount_fuse "$PTM"

inodes_kv=$((BIG_KEYS + BIG_DIRS + 1))
inodes_pt=$((PT_RSS_FILES + (PT_RSS_FILES + 999) / 1000))
per_kv=$(awk -v a="$a_stat" -v b="$a_base" -v n="$inodes_kv" 'BEGIN { print (a - b) * 1024 / n }')
per_pt=$(awk -v a="$p_stat" -v b="$p_base" -v n="$inodes_pt" 'BEGIN { print (a - b) * 1024 / n }')
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo "kvfs RSS over a $(fmt "$BIG_KEYS")-key store, MiB (VmRSS/RssAnon): mounted $(mb "$m_base")/$(mb "$a_base")," \
	"after find $(mb "$m_find")/$(mb "$a_find"), after find -size +0 (every name looked up)" \
	"$(mb "$m_stat")/$(mb "$a_stat"), after the kernel forgot the inodes $(mb "$m_forgot")/$(mb "$a_forgot")," \
	"after find -size +0 again $(mb "$m_again")/$(mb "$a_again")"
echo "RssAnon per inode after find -size +0: kvfs $(fmt "$per_kv") B ($(fmt "$inodes_kv") inodes)," \
	"passthrough_ll $(fmt "$per_pt") B ($(fmt "$inodes_pt") inodes, plus an fd each;" \
	"$(mb "$p_stat") MiB, $(mb "$p_forgot") after forget), ratio $(ratio "$per_kv" "$per_pt")"
