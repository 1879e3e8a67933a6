#!/usr/bin/env bash
# (The figure arrays are read through namerefs in row().)
# shellcheck disable=SC2034
# bench_disk: a kvfs mount where users run it: the STORE on the machine's
# real disk with the mount's default options, each row paired against a
# named peer on the same disk, in one run.
#
#   1. open+read+close of 5000 100-byte files in 50 directories (keys
#      dNN:fNNNN; a warm pass, then several timed ones), vs passthrough_ll
#   2. stat of the same files, vs passthrough_ll
#   3. create+write(100 B)+close of 2000 new files in 20 directories, vs
#      passthrough_ll; a fresh store and a fresh directory every run
#   4. rsync -aX of a 5000-file tree (50 directories, 100 B files with a
#      user.* xattr each) into an empty mount, then a second, no-op run,
#      vs rsync -aX into a plain directory; a fresh target every run
#   5. fsops mix DIR 5000 4 SEED (an fsstress-like load, see fsops.c), vs
#      passthrough_ll; with FSSTRESS naming an fsstress binary, also
#      `fsstress -d DIR -n 5000 -p 4 -s SEED`; fresh directories every run
#   6. a 25 MiB file: written in 128 KiB blocks and closed (a), read
#      again (b), then changed a little at a time (c): open, pwrite of 100
#      bytes at a random offset, fsync, close, 200 times; vs passthrough_ll
#
# The peer: libfuse's passthrough_ll example (compiled here from the
# libfuse3-dev example source) over a directory on the same filesystem as
# the kvfs stores, or that directory itself for rsync.  Both daemons run
# with their default options, but for row 5, where passthrough_ll needs
# -o xattr to do the load's setxattr calls at all (without it they fail
# with ENOTSUP).  Every peer sits on
# the same disk, the rule for every row, so a ratio compares the two
# filesystems and not two devices; the rows that read only cached data
# (1, 2) do not touch the disk on either side anyway.
#
# Nothing is removed until the end: ext4 makes a new inode slowly for
# about 30 s after many were freed (it skips recently deleted ones, in
# ext4_create's recently_deleted()), which would slow the peer's creates
# (rsync into an ext4 directory took 3.9 s instead of 0.3 s).  For the
# same reason, run it when nothing has removed many files on that
# filesystem in the last minute; the header says how long it waits.
#
# The work directory is BENCH_DIR (default /var/tmp, which is on the root
# disk where /tmp may be a tmpfs).  A tmpfs is refused: it hides what
# dominates on a disk, the fsyncs behind kvfs's commits, and earlier
# figures taken on a tmpfs misled for that reason.  BENCH_ALLOW_TMPFS=1
# allows it (for a smoke run), and the output says so.
#
# Each row runs BENCH_RUNS (default 5) pairs, kvfs then its peer,
# alternating (A B A B ...), and prints the median kvfs figure, the median
# peer figure, the median of the per-pair ratios and their range.  The
# machine is shared and FUSE figures hang on how fast the CPUs wake the
# daemon, so figures are noisy: that is why medians, and why the load
# average is printed before and after.  No figure is asserted: the exit
# status says only whether every operation worked (1 if any failed; the
# row says so).  Needs root (mounts as root, rsync -a keeps owners, chown).
# --quick runs 10x smaller sizes, as a smoke run whose figures mean little.
#
# Run: meson test -C BUILD --benchmark --suite bench -v kvfs-disk
# or:  BUILD_DIR=BUILD tests/bench/bench_disk.sh [--quick]
# (KVFS, KVCTL, FSOPS name the binaries if BUILD_DIR does not.)  Build
# with --buildtype=release and no sanitizers for figures worth quoting.
set -euo pipefail
export LC_ALL=C

BENCH_NAME=bench_disk
# shellcheck source=tests/bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_options "$@"
bench_binaries
bench_need_root "rsync -a keeps owners and the load chowns"
command -v rsync >/dev/null || die "rsync is missing"
command -v setfattr >/dev/null || die "setfattr is missing (package attr)"
if [[ -n ${FSSTRESS:-} && ! -x $FSSTRESS ]]; then
	die "FSSTRESS='$FSSTRESS' is not an executable"
fi

BENCH_DIR=${BENCH_DIR:-/var/tmp}
[[ -d $BENCH_DIR ]] || die "BENCH_DIR '$BENCH_DIR' is not a directory"
fstype=$(stat -f -c %T "$BENCH_DIR")
case $fstype in
tmpfs | ramfs)
	if [[ ${BENCH_ALLOW_TMPFS:-0} != 1 ]]; then
		die "BENCH_DIR '$BENCH_DIR' is on $fstype, which hides the disk's cost;" \
			"set BENCH_DIR to a directory on a disk (or BENCH_ALLOW_TMPFS=1 for a smoke run)"
	fi
	echo "# note: BENCH_DIR is on $fstype (allowed by BENCH_ALLOW_TMPFS=1): no disk is measured"
	;;
esac

if ((quick)); then
	NDIRS=5 NFILES=500 READ_PASSES=2 STAT_PASSES=4
	CREATE_DIRS=2 CREATE_FILES=200 MIX_OPS=500 PATCHES=20
else
	NDIRS=50 NFILES=5000 READ_PASSES=10 STAT_PASSES=20
	CREATE_DIRS=20 CREATE_FILES=2000 MIX_OPS=5000 PATCHES=200
fi
BIG=$((25 << 20))
MIX_PROCS=4
FSIZE=100
RUNS=${BENCH_RUNS:-5}
SEED=${BENCH_SEED:-1} # pair r runs the loads with seed SEED + r
DAEMON_LIMIT=3600 # no daemon outlives the benchmark's own time limit
# What fsops create writes, so the kvfs values and the files match.
VALUE='abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu\n'
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number"

T=$(mktemp -d "$BENCH_DIR/bench_disk.XXXXXX")
LOG=$T/log
failed_ops=0

cleanup() {
	local rc=$?
	set +e
	cd /
	unmount_all
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ helpers

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# fail ROW WHAT: an operation did not work: say so; the exit status will.
fail() {
	echo "$BENCH_NAME: row $1: $2" >&2
	failed_ops=$((failed_ops + 1))
	row_failed=1
}

# try VAR ROW MODE ARGS...: VAR becomes fsops's figure; a failed run is
# reported (fsops names the operation on stderr) and leaves VAR empty.
try() {
	local var=$1 row=$2 v
	shift 2
	if ! v=$(timeout 900 "$FSOPS" "$@"); then
		fail "$row" "'fsops $*' failed (fsops said why above)"
		v=
	fi
	printf -v "$var" '%s' "$v"
}

# timed VAR ROW CMD...: VAR becomes CMD's wall time in seconds, or empty
# if CMD failed.
timed() {
	local var=$1 row=$2 t0 rc=0
	shift 2
	t0=$(now)
	timeout 1800 "$@" >>"$LOG/cmd" 2>&1 || rc=$?
	printf -v "$var" '%s' "$(since "$t0")"
	if ((rc)); then
		tail -n 5 "$LOG/cmd" >&2
		fail "$row" "'$*' ended with status $rc"
		printf -v "$var" '%s' ""
	fi
}

# row LABEL PEER UNIT KIND KVFS_ARRAY PEER_ARRAY: one result line.  KIND
# "rate": higher is better, ratio kvfs/peer, "kvfs is N x faster";
# "time": lower is better, ratio kvfs/peer, "kvfs takes N x the time".
# A pair where either run failed an operation (an empty figure) is left
# out of the figures, and the line says how many were.
row() {
	local label=$1 peer=$2 unit=$3 kind=$4 i kept_kv=() kept_pe=() ratios=() m out=0
	local -n kv=$5 pe=$6
	for i in "${!kv[@]}"; do
		if [[ -z ${kv[i]} || -z ${pe[i]:-} ]]; then
			out=$((out + 1))
			continue
		fi
		kept_kv+=("${kv[i]}")
		kept_pe+=("${pe[i]}")
		ratios+=("$(ratio "${kv[i]}" "${pe[i]}")")
	done
	if ((${#ratios[@]} == 0)); then
		printf '%s: no pair without a failed operation -- OPERATIONS FAILED, see above\n' "$label"
		return 0
	fi
	m=$(ratio "$(median "${ratios[@]}")" 1)
	if [[ $kind == rate ]]; then
		printf '%s: kvfs %s %s, %s %s %s; ' "$label" \
			"$(fmt "$(median "${kept_kv[@]}")")" "$unit" "$peer" "$(fmt "$(median "${kept_pe[@]}")")" "$unit"
		if awk -v m="$m" 'BEGIN { exit !(m > 0 && m < 1) }'; then
			printf 'kvfs is %sx as fast (takes %sx the time)' "$m" "$(ratio 1 "$m")"
		else
			printf 'kvfs is %sx faster' "$m"
		fi
	else
		printf '%s: kvfs %s %s, %s %s %s; kvfs takes %sx the time' "$label" \
			"$(awk -v n="$(median "${kept_kv[@]}")" 'BEGIN { printf "%.2f", n }')" "$unit" "$peer" \
			"$(awk -v n="$(median "${kept_pe[@]}")" 'BEGIN { printf "%.2f", n }')" "$unit" "$m"
	fi
	if ((${#ratios[@]} == 1)); then
		printf ' (1 pair)'
	else
		printf ' (median of %d pairs, ratios %s)' "${#ratios[@]}" "$(span "${ratios[@]}")"
	fi
	if ((out)); then
		printf ' -- OPERATIONS FAILED in %d pair(s), left out; see above' "$out"
	elif ((row_failed)); then
		printf ' -- OPERATIONS FAILED, see above'
	fi
	printf '\n'
	return 0
}

machine() {
	read -r l1 l5 l15 _ </proc/loadavg
	echo "# load average $1: $l1 $l5 $l15 on $(nproc) CPUs"
}

# ============================================================== setup

mkdir -p "$LOG"
: >"$LOG/setup"
build_passthrough

src=$(findmnt -n -o SOURCE -T "$BENCH_DIR" || echo '?')
fsname=$(findmnt -n -o FSTYPE -T "$BENCH_DIR" || echo "$fstype")
mode=full
((quick)) && mode=quick
echo "# kvfs on a disk ($mode): $RUNS pair(s) a row, kvfs and its peer alternating; median figures and ratios"
echo "# kernel $(uname -r); BENCH_DIR $BENCH_DIR: $(findmnt -n -r -o FSTYPE,SOURCE,OPTIONS -T "$BENCH_DIR" || echo "$fstype")"
if [[ -b $src ]]; then
	echo "# device $src: $(lsblk -dn -o SIZE,ROTA,MODEL "$src" 2>/dev/null |
		awk '{ r = $2 ? "rotational (lsblk)" : "not rotational (lsblk)"; $2 = r; print }')"
fi
echo "# default options: kvfs STORE MNT; passthrough_ll -o source=DIR MNT (row 5: -o source=DIR,xattr)"
# Files freed in the last ~30 s make ext4 slow to create new ones.
sleep "${BENCH_SETTLE:-35}"
echo "# waited ${BENCH_SETTLE:-35} s for ext4 to settle after earlier removals (BENCH_SETTLE)"
machine before

paths_small_tree >"$T/paths"
sed 's,/,:,g' "$T/paths" >"$T/keys"
make_tree "$T/src" "$T/paths"
bulk_put "$T/kv" "$T/keys"
# Every source file gets a user.* xattr, for rsync -X (one setfattr for
# all: setfattr --restore reads getfattr's dump format).
awk '{ printf "# file: %s\nuser.origin=\"bench-%d\"\n\n", $0, NR }' "$T/paths" >"$T/xattrs"
(cd "$T/src" && timeout 300 setfattr --restore="$T/xattrs") || die "cannot set the source's xattrs"
awk -v nd="$CREATE_DIRS" -v nf="$CREATE_FILES" \
	'BEGIN { per = nf / nd; for (i = 0; i < nf; i++) printf "n%02d/n%04d\n", int(i / per), i }' \
	>"$T/paths.create"

KV=$T/mnt-kvfs PTM=$T/mnt-pt

# ====================================== 1, 2: open+read+close and stat

mount_kvfs "$T/kv" "$KV" "$LOG/kvfs"
mount_pt "$T/src" "$PTM" "$LOG/pt"
# kvfs serves a value from the page cache once it has been unchanged for
# KFS_SETTLE_MS (1 s).
sleep 1.5

# mounted_pairs ROW KV_ARRAY PEER_ARRAY MODE PASSES: RUNS pairs of fsops
# MODE over the files, on the kvfs mount and on the peer's, alternating.
mounted_pairs() {
	local row=$1 kv=$2 pe=$3 mode=$4 passes=$5 r
	row_failed=0
	for ((r = 0; r < RUNS; r++)); do
		try "$kv[$r]" "$row" "$mode" "$KV" "$T/paths" "$passes" "$FSIZE"
		try "$pe[$r]" "$row" "$mode" "$PTM" "$T/paths" "$passes" "$FSIZE"
	done
}

r_kv=() r_pt=() s_kv=() s_pt=()
mounted_pairs 1 r_kv r_pt read "$READ_PASSES"
row "1 open+read+close of $NFILES files" passthrough_ll ops/s rate r_kv r_pt
mounted_pairs 2 s_kv s_pt stat "$STAT_PASSES"
row "2 stat of $NFILES files" passthrough_ll ops/s rate s_kv s_pt
unmount_fuse "$KV"
unmount_fuse "$PTM"

# ============================================ 3: create+write+close
# A fresh store and a fresh directory every run; the directories are made
# (through the mount) before the clock starts.

c_kv=() c_pt=()
row_failed=0
for ((r = 0; r < RUNS; r++)); do
	mount_kvfs "$T/c-kv$r" "$KV" "$LOG/kvfs"
	make_dirs "$KV" "$T/paths.create"
	try c_kv[r] 3 create "$KV" "$T/paths.create" "" "$FSIZE"
	unmount_fuse "$KV"
	mkdir "$T/c-pt$r"
	mount_pt "$T/c-pt$r" "$PTM" "$LOG/pt"
	make_dirs "$PTM" "$T/paths.create"
	try c_pt[r] 3 create "$PTM" "$T/paths.create" "" "$FSIZE"
	unmount_fuse "$PTM"
done
row "3 create+write+close of $CREATE_FILES files" passthrough_ll ops/s rate c_kv c_pt

# ==================================================== 4: rsync -aX
# Into an empty mount of a fresh store, then again (nothing to copy);
# the peer: the same into a fresh plain directory.  The first pair's
# copies are compared with the source (contents, and the xattrs), and
# every no-op run must itemize no change.

# rsync_pair ROW DST: two timed rsync runs into DST; sets t1 and t2.
rsync_pair() {
	local row=$1 dst=$2
	timed t1 "$row" rsync -aX "$T/src/" "$dst/"
	: >"$LOG/cmd"
	timed t2 "$row" rsync -aX --itemize-changes "$T/src/" "$dst/"
	if [[ -s $LOG/cmd ]]; then
		# rsync itemized a change: the second run was not a no-op.
		head -n 5 "$LOG/cmd" >&2
		fail "$row" "the second rsync into '$dst' changed $(lines "$LOG/cmd") names"
	fi
	: >"$LOG/cmd"
}

# xattrs_of DIR: "path name=value" for every user.* xattr under DIR,
# sorted (getfattr lists in readdir order, which differs between
# filesystems).
xattrs_of() {
	(cd "$1" && timeout 300 getfattr -R -d -m '^user\.' . 2>&1) |
		awk '/^# file: / { f = substr($0, 9); next } /=/ { print f, $0 }' | sort
}

# same_tree A B ROW: contents and xattrs of two trees are alike.
same_tree() {
	local a=$1 b=$2 row=$3
	if ! timeout 300 diff -r -q "$a" "$b" >"$LOG/diff" 2>&1; then
		head -n 5 "$LOG/diff" >&2
		fail "$row" "'$b' differs from '$a'"
	fi
	xattrs_of "$a" >"$T/xa"
	xattrs_of "$b" >"$T/xb"
	if ! cmp -s "$T/xa" "$T/xb"; then
		diff "$T/xa" "$T/xb" | head -n 5 >&2 || true
		fail "$row" "the xattrs under '$b' differ from the source's"
	fi
}

y_kv=() y_pt=() z_kv=() z_pt=() t1=0 t2=0
row_failed=0
: >"$LOG/cmd"
for ((r = 0; r < RUNS; r++)); do
	mount_kvfs "$T/r-kv$r" "$KV" "$LOG/kvfs"
	rsync_pair 4 "$KV"
	y_kv[r]=$t1 z_kv[r]=$t2
	((r == 0)) && same_tree "$T/src" "$KV" 4
	unmount_fuse "$KV"
	mkdir "$T/r-e$r"
	rsync_pair 4 "$T/r-e$r"
	y_pt[r]=$t1 z_pt[r]=$t2
	((r == 0)) && same_tree "$T/src" "$T/r-e$r" 4
done
row "4a rsync -aX of $NFILES files into an empty mount" "$fsname dir" s time y_kv y_pt
row "4b rsync -aX again, nothing to copy" "$fsname dir" s time z_kv z_pt

# ================================================ 5: an fsstress load

m_kv=() m_pt=()
row_failed=0
for ((r = 0; r < RUNS; r++)); do
	mount_kvfs "$T/m-kv$r" "$KV" "$LOG/kvfs"
	try m_kv[r] 5 mix "$KV" "$MIX_OPS" "$MIX_PROCS" $((SEED + r))
	unmount_fuse "$KV"
	mkdir "$T/m-pt$r"
	mount_pt "$T/m-pt$r" "$PTM" "$LOG/pt" -o xattr
	try m_pt[r] 5 mix "$PTM" "$MIX_OPS" "$MIX_PROCS" $((SEED + r))
	unmount_fuse "$PTM"
done
row "5 fsops mix, $MIX_OPS ops x $MIX_PROCS processes" passthrough_ll ops/s rate m_kv m_pt

if [[ -n ${FSSTRESS:-} ]]; then
	f_kv=() f_pt=()
	row_failed=0
	for ((r = 0; r < RUNS; r++)); do
		mount_kvfs "$T/f-kv$r" "$KV" "$LOG/kvfs"
		timed f_kv[r] 5f "$FSSTRESS" -d "$KV/s" -n "$MIX_OPS" -p "$MIX_PROCS" -s $((SEED + r))
		unmount_fuse "$KV"
		mkdir "$T/f-pt$r"
		mount_pt "$T/f-pt$r" "$PTM" "$LOG/pt" -o xattr
		timed f_pt[r] 5f "$FSSTRESS" -d "$PTM/s" -n "$MIX_OPS" -p "$MIX_PROCS" -s $((SEED + r))
		unmount_fuse "$PTM"
	done
	row "5f fsstress -n $MIX_OPS -p $MIX_PROCS" passthrough_ll s time f_kv f_pt
fi

# ============================================ 6: a large file, patched
# A fresh store and directory every run.

w_kv=() w_pt=() q_kv=() q_pt=() p_kv=() p_pt=()
row_failed=0
for ((r = 0; r < RUNS; r++)); do
	mount_kvfs "$T/b-kv$r" "$KV" "$LOG/kvfs"
	try w_kv[r] 6 seqwrite "$KV/big" "$BIG"
	try q_kv[r] 6 seqread "$KV/big" "$BIG"
	try p_kv[r] 6 patch "$KV/big" "$PATCHES" 100 $((SEED + r))
	unmount_fuse "$KV"
	mkdir "$T/b-pt$r"
	mount_pt "$T/b-pt$r" "$PTM" "$LOG/pt"
	try w_pt[r] 6 seqwrite "$PTM/big" "$BIG"
	try q_pt[r] 6 seqread "$PTM/big" "$BIG"
	try p_pt[r] 6 patch "$PTM/big" "$PATCHES" 100 $((SEED + r))
	unmount_fuse "$PTM"
done
row "6a write+close of a 25 MiB file" passthrough_ll MB/s rate w_kv w_pt
row "6b read of it" passthrough_ll MB/s rate q_kv q_pt
row "6c open+pwrite(100 B)+fsync+close of it, $PATCHES times" passthrough_ll ops/s rate p_kv p_pt

machine after
if ((failed_ops)); then
	echo "# $failed_ops operations failed (see the messages above)"
	exit 1
fi
