# shellcheck shell=bash
# lib.sh: what the kvfs benchmarks (bench_kvfs.sh, bench_disk.sh) share.
# Sourced, not run.
#
# Mounts kvfs and libfuse's passthrough_ll (compiled here from the
# libfuse3-dev example source, never kept) with every daemon under
# `timeout`, remembers each mount so unmount_all can end them in the
# caller's EXIT trap, builds the benchmarks' file trees and stores, and
# formats figures.
#
# The caller sets, before using the helpers:
#   BENCH_NAME     prefix of error messages
#   T, LOG         a scratch directory and the directory of daemon logs
#                  ($LOG/setup collects the setup commands' output)
#   DAEMON_LIMIT   seconds no daemon outlives
#   NDIRS NFILES FSIZE VALUE   the small-file tree (paths_small_tree,
#                  make_tree, bulk_put)
# and gets KVFS, KVCTL, FSOPS (bench_binaries) and PT (build_passthrough).

MOUNTS=()                  # FUSE mountpoints, "" once unmounted
PIDS=()                    # the timeout process of each mount's daemon

die() {
	echo "$BENCH_NAME: $*" >&2
	exit 1
}

# bench_options ARGS...: the benchmark's command line, [--quick]; sets
# quick to 1 (10x smaller sizes) or 0.
bench_options() {
	quick=0
	case "${1:-}" in
	--quick) quick=1 ;;
	"") ;;
	*) echo "usage: $BENCH_NAME.sh [--quick]" >&2; exit 2 ;;
	esac
}

# bench_need_root WHY: dies unless run as root, saying WHY it must be.
bench_need_root() {
	[[ $EUID -eq 0 ]] || die "needs root: $1"
}

# bench_binaries: KVFS, KVCTL and FSOPS from the environment or BUILD_DIR;
# dies unless all are built.
bench_binaries() {
	local v
	BUILD_DIR=${BUILD_DIR:-}
	KVFS=${KVFS:-${BUILD_DIR:+$BUILD_DIR/fs/kvfs}}
	KVCTL=${KVCTL:-${BUILD_DIR:+$BUILD_DIR/tools/kvctl/kvctl}}
	FSOPS=${FSOPS:-${BUILD_DIR:+$BUILD_DIR/tests/bench/fsops}}
	for v in KVFS KVCTL FSOPS; do
		[[ -n ${!v} && -x ${!v} ]] || die "set $v to the built binary"
	done
	if ldd "$KVFS" 2>/dev/null | grep -q libasan; then
		echo "# note: $KVFS is built with AddressSanitizer; figures are pessimistic"
	fi
}

# Show a daemon's log when something went wrong with it.
show_log() {
	[[ -s $1 ]] && tail -n 20 "$1" >&2
	return 0
}

# ------------------------------------------------------------ mounts

# wait_mounted MNT PID LOG: until MNT is a FUSE mount, or the daemon died.
wait_mounted() {
	local i
	for ((i = 0; i < 100; i++)); do
		if grep -qs " $1 fuse" /proc/mounts; then
			return 0
		fi
		if ! kill -0 "$2" 2>/dev/null; then
			show_log "$3"
			die "the daemon for '$1' ended before mounting"
		fi
		sleep 0.1
	done
	show_log "$3"
	die "'$1' was not mounted within 10 s"
}

register_mount() {
	MOUNTS+=("$1")
	PIDS+=("$2")
	wait_mounted "$1" "$2" "$3"
}

# mount_kvfs STORE MNT LOG [kvfs options...]
mount_kvfs() {
	local store=$1 mnt=$2 log=$3
	shift 3
	mkdir -p "$mnt"
	[ -e "$store" ] || set -- -o create "$@" # a new store is made only when asked
	timeout -s TERM "$DAEMON_LIMIT" "$KVFS" -f "$@" "$store" "$mnt" >>"$log" 2>&1 &
	register_mount "$mnt" $! "$log"
}

# mount_pt SRC MNT LOG [passthrough_ll options...]
mount_pt() {
	local src=$1 mnt=$2 log=$3
	shift 3
	mkdir -p "$mnt"
	timeout -s TERM "$DAEMON_LIMIT" "$PT" -f -o source="$src" "$@" "$mnt" >>"$log" 2>&1 &
	register_mount "$mnt" $! "$log"
}

# The daemon itself: the child of the timeout process that runs it.
daemon_pid() {
	local i
	for i in "${!MOUNTS[@]}"; do
		if [[ ${MOUNTS[i]} == "$1" ]]; then
			timeout 10 pgrep -P "${PIDS[i]}" || die "no daemon under pid ${PIDS[i]}"
			return 0
		fi
	done
	die "no daemon for '$1'"
}

# unmount_fuse MNT: fusermount3 -u, else -uz; then wait up to 10 s for its
# daemon to end, and kill it by pid if it does not.
unmount_fuse() {
	local mnt=$1 i pid=
	for i in "${!MOUNTS[@]}"; do
		if [[ ${MOUNTS[i]} == "$mnt" ]]; then
			pid=${PIDS[i]}
			MOUNTS[i]=
		fi
	done
	timeout 30 fusermount3 -u "$mnt" 2>/dev/null ||
		timeout 30 fusermount3 -uz "$mnt" 2>/dev/null || true
	if [[ -n $pid ]]; then
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}

# For the EXIT trap: every mount still up.
unmount_all() {
	local i
	for i in "${!MOUNTS[@]}"; do
		[[ -n ${MOUNTS[i]} ]] && unmount_fuse "${MOUNTS[i]}"
	done
	return 0
}

# --------------------------------------------------------- data sets

# The paths of the small-file tree (relative), one a line: NFILES files
# dNN/fNNNN in NDIRS directories.
paths_small_tree() {
	awk -v nd="$NDIRS" -v nf="$NFILES" \
		'BEGIN { per = nf / nd; for (i = 0; i < nf; i++) printf "d%02d/f%04d\n", int(i / per), i }'
}

# bulk_put STORE KEYLIST: every key of KEYLIST with VALUE, 10,000 a file
# (the bulk format's limit).
bulk_put() {
	local store=$1 keys=$2 c
	rm -f "$T"/chunk.*
	split -l 10000 -d -a 3 "$keys" "$T/chunk."
	for c in "$T"/chunk.*; do
		VALUE=$VALUE awk 'BEGIN { printf "["; v = ENVIRON["VALUE"] }
			{ printf "%s{\"key\":\"%s\",\"value\":\"%s\"}", (NR > 1 ? "," : ""), $0, v }
			END { print "]" }' "$c" >"$c.json"
		timeout 300 "$KVCTL" "$store" bulk put "$c.json" >>"$LOG/setup" 2>&1 ||
			{ show_log "$LOG/setup"; die "kvctl bulk put into '$store' failed"; }
		rm -f "$c" "$c.json"
	done
}

# make_dirs ROOT PATHLIST: the directories of PATHLIST's files under ROOT
# (which may be a mount: under a time limit).
make_dirs() {
	timeout 60 mkdir -p "$1" || die "cannot create '$1'"
	(cd "$1" && sed 's,/[^/]*$,,' "$2" | sort -u | timeout 300 xargs -r mkdir -p) ||
		die "cannot create the directories of '$2' under '$1'"
}

# make_tree ROOT PATHLIST: the files of PATHLIST under ROOT, FSIZE B each.
make_tree() {
	make_dirs "$1" "$2"
	timeout 300 "$FSOPS" create "$1" "$2" "" "$FSIZE" >/dev/null ||
		die "cannot create the files of '$2' under '$1'"
}

# build_passthrough: PT becomes the passthrough_ll example, compiled from
# the packaged source into $T/pt.
build_passthrough() {
	local ex=/usr/share/doc/libfuse3-dev/examples f dir=$T/pt
	mkdir -p "$dir"
	for f in passthrough_ll.c passthrough_helpers.h; do
		if [[ -f $ex/$f ]]; then
			cp "$ex/$f" "$dir/$f"
		elif [[ -f $ex/$f.gz ]]; then
			gzip -dc "$ex/$f.gz" >"$dir/$f"
		else
			die "no $ex/$f: install libfuse3-dev"
		fi
	done
	# shellcheck disable=SC2046
	timeout 300 cc -O2 -o "$dir/passthrough_ll" "$dir/passthrough_ll.c" \
		$(pkg-config --cflags --libs fuse3) >>"$LOG/setup" 2>&1 ||
		{ show_log "$LOG/setup"; die "cannot compile passthrough_ll"; }
	PT=$dir/passthrough_ll
}

drop_caches() {
	timeout 120 sync
	echo "$1" >/proc/sys/vm/drop_caches
	sleep 1
}

# ------------------------------------------------------------ figures

# fmt N: 41234.5 -> 41.2k
fmt() {
	awk -v n="$1" 'BEGIN {
		if (n >= 1e6) printf "%.2fM", n / 1e6
		else if (n >= 1e4) printf "%.1fk", n / 1e3
		else if (n >= 100) printf "%.0f", n
		else printf "%.1f", n }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'
}

max() {
	awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'
}

# median N...: the median of the numbers (the mean of the middle two of an
# even count).
median() {
	printf '%s\n' "$@" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# span N...: "min–max" of the numbers, two decimals.
span() {
	printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }'
}

# run MODE ARGS...: fsops under a time limit; the figure on stdout.
run() {
	timeout 600 "$FSOPS" "$@" || die "fsops $1 failed on '$2'"
}

lines() { wc -l <"$1"; }
