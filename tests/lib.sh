# shellcheck shell=bash
# lib.sh: what the shell suites share besides the checks (tests/checks.sh,
# sourced from here), sourced by each suite's lib.sh, not run.
#
# work_dir makes the test's fresh directory $WORK and sets an EXIT trap
# that stops whatever the test started, however it ends: kvfs mounts
# (MOUNTS) unmounted, processes (PIDS) stopped by their pid, network
# namespaces (NETNS) deleted, small filesystems (small_fs) unmounted; on
# failure it shows the daemons' logs ($WORK/*.log).  Then the ways to
# start a daemon and wait until it serves: a command in the background
# (bg), kvfs (mount_kvfs), kvapi (start_kvapi), a free TCP port
# (free_port), and two hosts made of network namespaces joined by a veth
# pair (netns_pair).
set -euo pipefail

export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

KVFS=${KVFS:-${BUILD_DIR:-/nonexistent}/fs/kvfs}
PIDS=()     # processes to stop at exit, by pid
MOUNTS=()   # kvfs mountpoints to unmount at exit
NETNS=()    # network namespaces to delete at exit
SMALL_FS=() # tmpfs mounts (small_fs) to unmount at exit
KVAPI_ARGS=() # options start_kvapi gives every kvapi of the suite
declare -gA MOUNT_OF=() # the mountpoint of each kvfs pid (mount_kvfs)
LOG_LINES=${LOG_LINES:-40} # how much of each log a failure shows (tail -n)

# work_dir NAME [PARENT]: $WORK, a fresh directory PARENT/NAME.XXXXXX
# (PARENT: $TMPDIR or /tmp), and the EXIT trap that cleans up.  A test
# that needs more at exit sets its own trap and calls lib_cleanup last.
work_dir() {
	WORK=$(mktemp -d "${2:-${TMPDIR:-/tmp}}/$1.XXXXXX")
	trap lib_cleanup EXIT
}

lib_cleanup() {
	local rc=$? m n f
	cd / # a test may stand in a mount, which would keep it busy
	# Not "mountpoint -q" first: the mount of a daemon that died answers
	# ENOTCONN and does not look like a mountpoint, but needs unmounting.
	for m in "${MOUNTS[@]}"; do
		timeout 10 fusermount3 -u "$m" 2>/dev/null ||
			timeout 10 fusermount3 -uz "$m" 2>/dev/null || true
	done
	stop_pids "${PIDS[@]}"
	for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
	for m in "${SMALL_FS[@]}"; do umount -l "$m" 2>/dev/null || true; done
	if [ "$rc" -ne 0 ]; then
		for f in "$WORK"/*.log; do
			[ -s "$f" ] || continue
			echo "# ${f##*/}:"
			tail -n "$LOG_LINES" "$f" | sed 's/^/#   /'
		done
	fi
	rm -rf "$WORK"
	exit "$rc"
}

# stop_pids PID...: SIGTERM to each, then wait (at most 10 s each) for it
# to end, else SIGKILL.  An unmounted kvfs has ended by itself already.
stop_pids() {
	local p
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "$@"; do
		timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
}

# bg NAME CMD...: start CMD in the background under a long timeout (stdout
# to $WORK/NAME.out, stderr to $WORK/NAME.log); its pid is in $BG_PID and
# it is stopped at exit.  --foreground: a signal sent to timeout reaches
# CMD once, not its whole process group (where a sanitizer's helper
# process may be running and must not be hit).
bg() {
	local name=$1
	shift
	timeout --foreground 600 "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
	BG_PID=$!
	PIDS+=("$BG_PID")
}

# free_port: a TCP port nobody listens on right now.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_ready PID WHAT CMD...: poll CMD (every 0.1 s, at most 10 s) until it
# succeeds, as the daemon PID becomes ready; fail, saying so, if the
# daemon ends first or the time is up.
wait_ready() {
	local pid=$1 what=$2
	shift 2
	for _ in $(seq 100); do
		"$@" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "# $what: the daemon exited first" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "# $what: not within 10 s" >&2
	return 1
}

# kvfs_usable: the kvfs binary was built and FUSE is there.
kvfs_usable() {
	[ -x "$KVFS" ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null
}

# mount_kvfs STORE MNT [ARGS...]: start kvfs -f STORE MNT ARGS in the
# background and wait (at most 10 s) until MNT is mounted; it is unmounted
# at exit.  A STORE that does not exist yet is made (-o create); an
# existing one is mounted without it, as an operator's would be.  Its stderr goes to $MOUNT_LOG if set, else $WORK/kvfs.log.
# Sets KVFS_PID, the pid of the timeout that runs it (signals and exit
# status pass through), and KVFS_DAEMON_PID, that of the daemon itself.
mount_kvfs() {
	local store=$1 mnt=$2
	shift 2
	if [ ! -c /dev/fuse ]; then
		echo "# /dev/fuse is missing: kvfs cannot mount here" >&2
		return 1
	fi
	mkdir -p "$mnt"
	[ -e "$store" ] || set -- -o create "$@"
	# A background job of a script starts with SIGINT ignored, and libfuse
	# keeps an ignored signal ignored: restore the default.  --foreground:
	# a signal sent to timeout reaches the daemon once, not its process
	# group (where a sanitizer's helper process may be running).
	env --default-signal=INT timeout --foreground 900 "$KVFS" -f "$store" "$mnt" "$@" \
		2>>"${MOUNT_LOG:-$WORK/kvfs.log}" &
	KVFS_PID=$!
	PIDS+=("$KVFS_PID")
	MOUNT_OF[$KVFS_PID]=$mnt
	MOUNTS+=("$mnt")
	wait_ready "$KVFS_PID" "kvfs mounting $mnt" timeout 5 mountpoint -q "$mnt" || return 1
	KVFS_DAEMON_PID=$(pgrep -P "$KVFS_PID" | head -n 1)
}

# start_kvapi ROOT [ARGS...]: serve ROOT with $KVAPI, the suite's
# KVAPI_ARGS and ARGS, on a loopback port it picks itself (--listen
# 127.0.0.1:0), in the background (stderr to $WORK/kvapi.log), and wait
# (at most 10 s) until it says where it listens, which it does once it
# accepts connections.  Sets KVAPI_PID (the pid of the timeout that runs
# it), ADDR (127.0.0.1:PORT), API_BASE (http://ADDR/client/v4) and BASE
# (the namespaces URL of $ACCOUNT).
start_kvapi() {
	local root=$1
	shift
	: "${KVAPI:?KVAPI must name the kvapi binary}"
	mkdir -p "$root"
	: >"$WORK/kvapi.log"
	timeout --foreground 900 "$KVAPI" --listen 127.0.0.1:0 "${KVAPI_ARGS[@]}" \
		"$@" "$root" 2>>"$WORK/kvapi.log" &
	KVAPI_PID=$!
	PIDS+=("$KVAPI_PID")
	wait_ready "$KVAPI_PID" kvapi kvapi_listens || return 1
	API_BASE="http://$ADDR/client/v4"
	BASE="$API_BASE/accounts/${ACCOUNT:-}/storage/kv/namespaces"
}

# kvapi_listens: kvapi said where it listens (ADDR, from $WORK/kvapi.log).
kvapi_listens() {
	ADDR=$(sed -n 's/^kvapi: serving .* on \([0-9.:]*\) .*/\1/p' "$WORK/kvapi.log")
	[ -n "$ADDR" ]
}

# netns_pair NAME ADDR_A ADDR_B: two hosts, network namespaces $NS_A and
# $NS_B (NAME-a-PID, NAME-b-PID) joined by a veth pair (NAMEaPID,
# NAMEbPID: NAME at most 7 characters) with the addresses ADDR_A and
# ADDR_B (with their prefix length, e.g. 10.77.0.1/24), loopback and the
# pair up; deleted at exit.  Needs root: without it the test fails, unless
# KVFS_ALLOW_SKIP=1, then it is skipped (exit 77).
netns_pair() {
	local name=$1 ns
	NS_A=$name-a-$$
	NS_B=$name-b-$$
	if ! ip netns add "$NS_A" 2>"$WORK/netns.err"; then
		echo "# ip netns is not permitted here: $(cat "$WORK/netns.err")"
		[ "${KVFS_ALLOW_SKIP:-0}" = 1 ] && exit 77
		exit 1
	fi
	NETNS+=("$NS_A")
	t ip netns add "$NS_B"
	NETNS+=("$NS_B")
	t ip link add "${name}a$$" type veth peer name "${name}b$$"
	t ip link set "${name}a$$" netns "$NS_A"
	t ip link set "${name}b$$" netns "$NS_B"
	t ip -n "$NS_A" addr add "$2" dev "${name}a$$"
	t ip -n "$NS_B" addr add "$3" dev "${name}b$$"
	for ns in "$NS_A" "$NS_B"; do t ip -n "$ns" link set lo up; done
	t ip -n "$NS_A" link set "${name}a$$" up
	t ip -n "$NS_B" link set "${name}b$$" up
}

# small_fs DIR SIZE: mount a tmpfs of SIZE (e.g. 16m) on DIR, for the tests
# of a full disk; it is unmounted (lazily) at exit.  Mounting needs root:
# without it the test fails, unless KVFS_ALLOW_SKIP=1, then it is skipped
# (exit 77).
small_fs() {
	mkdir -p "$1"
	if ! t mount -t tmpfs -o "size=$2" tmpfs "$1"; then
		echo "# cannot mount a tmpfs on $1 (needs root)"
		[ "${KVFS_ALLOW_SKIP:-0}" = 1 ] && exit 77
		exit 1
	fi
	SMALL_FS+=("$1")
}

# fill_fs DIR [FREE_KIB]: fill the filesystem of DIR with DIR/filler until
# at most FREE_KIB (default 0) KiB are left.
fill_fs() {
	local free
	t dd if=/dev/zero of="$1/filler" bs=64k >/dev/null 2>&1 || true
	if [ "${2:-0}" -gt 0 ]; then
		free=$(($(stat -c %s "$1/filler") - $2 * 1024))
		t truncate -s "$free" "$1/filler"
	fi
}

# notify_listen NAME: a systemd notify socket $WORK/NAME.sock (what a
# daemon's NOTIFY_SOCKET names) whose messages go to $WORK/NAME.out, one a
# line, until READY=1 (notify_recv); sets RECV_PID.
notify_listen() {
	rm -f "$WORK/$1.sock"
	timeout 60 "${NOTIFY_RECV:?NOTIFY_RECV must name the notify_recv helper}" \
		"$WORK/$1.sock" 30 >"$WORK/$1.out" 2>&1 &
	RECV_PID=$!
	PIDS+=("$RECV_PID")
	wait_ready "$RECV_PID" "notify_recv" test -S "$WORK/$1.sock"
}

# check_ready DESC NAME: the listener of notify_listen NAME got READY=1.
check_ready() {
	local rc=0
	wait "$RECV_PID" || rc=$?
	if [ "$rc" -eq 0 ] && grep -qx 'READY=1' "$WORK/$2.out"; then
		ok "$1"
	else
		not_ok "$1 (notify_recv exit $rc: $(tr '\n' ' ' <"$WORK/$2.out"))"
	fi
}

# check_stopping DESC NAME CMD...: with a new listener on the notify socket
# NAME, run CMD (which stops the daemon); the daemon said STOPPING=1.
check_stopping() {
	local desc=$1 name=$2 stop
	shift 2
	notify_listen "$name"
	stop=$RECV_PID
	"$@"
	# notify_recv waits for READY=1 only: stop it, then read what it got.
	kill -TERM "$stop" 2>/dev/null || true
	wait "$stop" 2>/dev/null || true
	check "$desc" grep -qx 'STOPPING=1' "$WORK/$name.out"
}

# term_exits_0 DESC PID: SIGTERM to PID, which must exit with status 0.
term_exits_0() {
	local rc=0
	kill -TERM "$2"
	wait "$2" || rc=$?
	check_eq "$1" "$rc" 0
}

