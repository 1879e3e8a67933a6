#!/usr/bin/env bash
# The shipped systemd units (systemd/): installed by `meson install` (into
# a DESTDIR here) with ExecStart naming the installed programs;
# `systemd-analyze verify` finds nothing to say about any of them;
# `systemd-analyze security --offline=yes` scores kvsync-serve,
# kvsync-watch@ and kvapi at most SERVE_MAX (2.0, "OK") and kvfs@, which
# may not have a mount namespace of its own, at most KVFS_MAX (4.0,
# "OK"); and each unit's ExecStart line, read from the installed unit with
# its specifiers and variables put in as systemd would, starts its daemon,
# which says READY=1 on the notify socket (and ends with status 0 at
# SIGTERM, kvfs unmounted).  systemd need not run: everything is offline.
#
# The substitution, as systemd.service(5) describes it: %i is the
# instance, %f "/" and the instance unescaped (systemd-escape -u -p); the
# variables come from Environment= and then the EnvironmentFile (a conf
# file the test writes, as an operator would); "${NAME}" is one word,
# "$NAME" alone is split at whitespace into words (none if empty).
#
# Environment: BUILD_DIR, NOTIFY_RECV, KVCTL.  Without systemd-analyze the
# test fails, unless KVFS_ALLOW_SKIP=1: then it is skipped (exit 77); the
# same for /dev/fuse and the kvfs@ run.
. "$TESTS_DIR/lib.sh"

SERVE_MAX=2.0 KVFS_MAX=4.0
if ! command -v systemd-analyze >/dev/null; then
	echo "# systemd-analyze is missing (Debian package systemd)"
	[ "${KVFS_ALLOW_SKIP:-0}" = 1 ] && exit 77
	exit 1
fi
work_dir kvfs-units
ROOT=$WORK/root

# --- installed --------------------------------------------------------------
t meson install -C "$BUILD_DIR" --destdir "$ROOT" --no-rebuild --quiet >/dev/null
unit_dir=$(dirname "$(find "$ROOT" -name 'kvfs@.service' | head -n 1)")
for u in kvfs@.service kvsync-watch@.service kvsync-serve.service kvapi.service; do
	check "$u is installed" test -s "$unit_dir/$u"
done
bindir=$(sed -n 's|^ExecStart=\(/[^ ]*\)/kvfs .*|\1|p' "$unit_dir/kvfs@.service")
check "ExecStart names an installed kvfs" test -x "$ROOT$bindir/kvfs"

# verify resolves the units' dependencies (sysinit.target, ...) and their
# ExecStart inside --root: the system's units go there beside ours, and
# man finds the installed pages for Documentation=.
mkdir -p "$ROOT/usr/lib/systemd"
t cp -r /usr/lib/systemd/system "$ROOT/usr/lib/systemd/"
export MANPATH=$ROOT/usr/local/share/man:$ROOT/usr/share/man
units=(kvfs@srv-app.service kvsync-watch@app.service kvsync-serve.service kvapi.service)
for u in "${units[@]}"; do
	status=0
	said=$(cd "$unit_dir" && t systemd-analyze verify --root="$ROOT" "$u" 2>&1) || status=$?
	check_eq "systemd-analyze verify $u: no warning" "$status: $said" "0: "
done

# --- hardening ----------------------------------------------------------------
for u in "${units[@]}"; do
	score=$(t systemd-analyze security --offline=yes --root="$ROOT" "$u" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	max=$SERVE_MAX
	[[ "$u" == kvfs@* ]] && max=$KVFS_MAX
	echo "# $u: exposure $score"
	check "$u: exposure ${score:-none} at most $max" awk -v s="$score" -v m="$max" \
		'BEGIN { exit !(s != "" && s + 0 <= m + 0) }'
done

# --- the ExecStart lines start the daemons --------------------------------------
# exec_line UNIT INSTANCE CONF [KEY]: the words of UNIT's ExecStart (or
# KEY: ExecStopPost...; its program taken from the DESTDIR when installed
# there, a leading "-" dropped) with INSTANCE and the conf file CONF put
# in, in the array CMD.
exec_line() {
	local unit=$1 inst=$2 conf=$3 key=${4:-ExecStart} line word name
	local -A env=()
	line=$(sed -n 's/^Environment=//p' "$unit_dir/$unit")
	line=${line//%i/$inst}
	for word in $line; do env[${word%%=*}]=${word#*=}; done
	while IFS= read -r word; do
		[[ "$word" =~ ^[A-Z_]+= ]] || continue
		word=${word%\"}
		name=${word%%=*}
		word=${word#*=}
		env[$name]=${word#\"}
	done <"$conf"
	line=$(sed -n "s/^$key=-\\{0,1\\}//p" "$unit_dir/$unit")
	line=${line//%i/$inst}
	[[ "$line" != *%f* ]] || line=${line//%f/$(systemd-escape -u -p "$inst")}
	CMD=()
	for word in $line; do
		if [[ "$word" =~ ^\$\{([A-Z_]+)\}$ ]]; then
			CMD+=("${env[${BASH_REMATCH[1]}]:-}")
		elif [[ "$word" =~ ^\$([A-Z_]+)$ ]]; then
			# shellcheck disable=SC2206 # split at whitespace, as systemd does
			CMD+=(${env[${BASH_REMATCH[1]}]:-})
		else
			CMD+=("$word")
		fi
	done
	[ ! -e "$ROOT${CMD[0]}" ] || CMD[0]=$ROOT${CMD[0]}
	echo "# $unit $key: ${CMD[*]}"
}

# start_unit UNIT INSTANCE CONF: run its ExecStart line in the background
# under a notify socket (UNIT_PID); check_ready then sees READY=1.
start_unit() {
	exec_line "$@"
	notify_listen "ready-${1%%.*}"
	NOTIFY_SOCKET="$WORK/ready-${1%%.*}.sock" timeout --foreground 300 "${CMD[@]}" \
		>"$WORK/${1%%.*}.out" 2>"$WORK/${1%%.*}.log" &
	UNIT_PID=$!
	PIDS+=("$UNIT_PID")
}

# kvsync serve, with the token and a port of the test's.
printf 'secret-token-of-the-test\n' >"$WORK/token"
port=$(free_port)
cat >"$WORK/serve.conf" <<EOF
STORE=$WORK/served
LISTEN=127.0.0.1:$port
TOKEN_FILE=$WORK/token
EOF
start_unit kvsync-serve.service "" "$WORK/serve.conf"
check_ready "kvsync-serve.service: its ExecStart says READY=1" ready-kvsync-serve
serve_pid=$UNIT_PID

# kvsync --watch from a store to that daemon.
t "$KVCTL" "$WORK/src" put greeting hello 2>/dev/null
cat >"$WORK/app.conf" <<EOF
SRC=$WORK/src
DST=kvsync://127.0.0.1:$port
OPTIONS="--token-file $WORK/token"
EOF
start_unit kvsync-watch@.service app "$WORK/app.conf"
watch_pid=$UNIT_PID
check_ready "kvsync-watch@.service: its ExecStart says READY=1 (caught up)" ready-kvsync-watch@
check "and syncs to the daemon" within 20000 sh -c \
	'test "$("$0" "$1" get greeting 2>/dev/null)" = hello' "$KVCTL" "$WORK/served"
term_exits_0 "kvsync --watch ends with status 0 at SIGTERM" "$watch_pid"
term_exits_0 "kvsync serve ends with status 0 at SIGTERM" "$serve_pid"

# kvapi over a root of the test's.
cat >"$WORK/kvapi.conf" <<EOF
ROOT=$WORK/api
LISTEN=127.0.0.1:0
EOF
mkdir -p "$WORK/api"
start_unit kvapi.service "" "$WORK/kvapi.conf"
check_ready "kvapi.service: its ExecStart says READY=1" ready-kvapi
term_exits_0 "kvapi ends with status 0 at SIGTERM" "$UNIT_PID"

# kvfs@ on a mountpoint of the test's; the store is made (-o create).
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
	mkdir -p "$WORK/mnt"
	inst=$(systemd-escape -p "$WORK/mnt")
	printf 'STORE=%s\nOPTIONS=-o allow_other,default_permissions\n' "$WORK/kvstore" \
		>"$WORK/kvfs.conf"
	MOUNTS+=("$WORK/mnt")
	start_unit kvfs@.service "$inst" "$WORK/kvfs.conf"
	check_ready "kvfs@$inst.service: its ExecStart says READY=1" ready-kvfs@
	t sh -c 'echo v > "$0/k"' "$WORK/mnt"
	check_eq "the mount is of the conf file's store" "$(t "$KVCTL" "$WORK/kvstore" get k)" "v"
	check "with the conf file's options" sh -c \
		'findmnt -n -o OPTIONS "$0" | grep -q allow_other' "$WORK/mnt"
	term_exits_0 "kvfs ends with status 0 at SIGTERM (no ExecStop needed)" "$UNIT_PID"
	check "and has unmounted" sh -c '! mountpoint -q "$0"' "$WORK/mnt"

	# A daemon killed outright leaves its mount behind (ENOTCONN), which
	# the next start would refuse; the unit's ExecStopPost takes it down.
	start_unit kvfs@.service "$inst" "$WORK/kvfs.conf"
	check_ready "kvfs@$inst.service starts again" ready-kvfs@
	kill -KILL "$(pgrep -P "$UNIT_PID" -x kvfs)"
	timeout 10 tail --pid="$UNIT_PID" -f /dev/null 2>/dev/null || true
	check "a killed kvfs leaves its mount behind" sh -c \
		'findmnt -n "$0" >/dev/null' "$WORK/mnt"
	exec_line kvfs@.service "$inst" "$WORK/kvfs.conf" ExecStopPost
	t "${CMD[@]}" 2>/dev/null || true
	start_unit kvfs@.service "$inst" "$WORK/kvfs.conf"
	check_ready "after its ExecStopPost the unit starts again (Restart=on-failure)" ready-kvfs@
	check_eq "serving the store" "$(t cat "$WORK/mnt/k")" "v"
	term_exits_0 "and ends with status 0 at SIGTERM" "$UNIT_PID"
elif [ "${KVFS_ALLOW_SKIP:-0}" = 1 ]; then
	ok "# SKIP kvfs@.service's ExecStart: no /dev/fuse"
else
	not_ok "kvfs@.service's ExecStart: /dev/fuse is missing"
fi

tap_plan
