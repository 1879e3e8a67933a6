#!/usr/bin/env bash
# test_hostile: a client that turns its own clock bound off (REQ max skew 0)
# and pushes records built to poison the receiver: a clock of 2^64 - 1, a
# clock 100 years ahead, a negative expiration, a ttl of 2^32 - 1 with mtime
# INT64_MAX, a ttl whose expiration is not mtime + ttl, a ctime before 1970.
# `kvsync --server STORE` and `kvsync serve` refuse each one (exit 3 for a
# record whose fields disagree, exit 4 for a clock over the receiver's own
# --max-skew, default one day), the store is unchanged, `kvctl check` is
# clean, a dry run refuses what the real run refuses, and the store still
# replicates both ways afterwards.  The receiver's operator alone can lift
# the bound (--max-skew 0), and otherwise the smaller of the two bounds wins.
. "$(dirname "$0")/lib.sh"
. "$SYNC_DIR/frames.sh"

STORE=$WORK/store
kvctl "$STORE" put existing "keep me" 2>/dev/null
kvctl "$STORE" put timed "with a ttl" --ttl 3600
NODE=4242
NOW_MS=$(date +%s%3N)
NOW_NS=$(date +%s%N)
DAY_MS=86400000
INT64_MAX=9223372036854775807

# feed NAME [ARGS...]: run `kvsync ARGS --server STORE` on $WORK/NAME.bin
# (STORE is $TARGET, default $STORE); print its exit status.
feed() {
	local name=$1 rc=0
	shift
	t "$KVSYNC" "$@" --server "${TARGET:-$STORE}" <"$WORK/$name.bin" >/dev/null \
		2>"$WORK/last.err" || rc=$?
	echo "$rc"
}

# stream NAME FLAGS SKEW REC_FIELDS...: a push of one record in one batch.
stream() {
	local name=$1 flags=$2 skew=$3
	shift 3
	{
		prologue $NODE "$flags" "$skew"
		rec_fields "$@"
		batch_end 1
		done_frame 1
		bye
	} >"$WORK/$name.bin"
}

# hostile NAME DESC EXIT MESSAGE REC_FIELDS...: pushed with the client's
# bound off, the record is refused with EXIT and MESSAGE, and nothing of
# the store changes.
hostile() {
	local name=$1 desc=$2 want=$3 msg=$4
	shift 4
	stream "$name" 0 0 "$@"
	snapshot "$STORE" "$WORK/before"
	check_eq "$desc: exit $want" "$(feed "$name")" "$want"
	check_err "$desc: says '$msg'" "$msg"
	snapshot "$STORE" "$WORK/after"
	check "$desc: the store is unchanged" cmp -s "$WORK/before" "$WORK/after"
	check "$desc: kvctl check is clean" kvctl "$STORE" check
}

#       NAME      DESC                                   EXIT MESSAGE
#       key value hlc origin seq flags ttl expiration mtime ctime
hostile max-hlc "a clock of 2^64 - 1" 3 "beyond any real clock" \
	bad:clock v -1 $NODE 1 0 0 0 "$NOW_NS" "$NOW_NS"
hostile century "a clock 100 years ahead" 4 "max-skew" \
	bad:century v $(((NOW_MS + 36500 * DAY_MS) << 16)) $NODE 1 0 0 0 "$NOW_NS" "$NOW_NS"
hostile two-days "a clock two days ahead (over the default bound of one day)" 4 "max-skew" \
	bad:ahead v $(((NOW_MS + 2 * DAY_MS) << 16)) $NODE 1 0 0 0 "$NOW_NS" "$NOW_NS"
hostile neg-exp "expiration -5" 3 "expiration of -5 is negative" \
	bad:exp v $((NOW_MS << 16)) $NODE 1 0 0 -5 "$NOW_NS" "$NOW_NS"
hostile max-mtime "ttl 2^32 - 1 with mtime INT64_MAX" 3 "mtime" \
	bad:mtime v $((NOW_MS << 16)) $NODE 1 0 4294967295 0 $INT64_MAX "$NOW_NS"
hostile max-mtime-exp "ttl 2^32 - 1 with mtime INT64_MAX and a wrapped expiration" 3 "mtime" \
	bad:mtime v $((NOW_MS << 16)) $NODE 1 0 4294967295 -9223368437 $INT64_MAX "$NOW_NS"
hostile bad-ttl "a ttl whose expiration is not mtime + ttl" 3 "not its mtime + ttl" \
	bad:ttl v $((NOW_MS << 16)) $NODE 1 0 600 $((NOW_NS / 1000000000 + 5000)) "$NOW_NS" "$NOW_NS"
hostile old-ctime "a ctime before 1970" 3 "ctime" \
	bad:ctime v $((NOW_MS << 16)) $NODE 1 0 0 0 "$NOW_NS" -1000000000
hostile tomb-clock "a tombstone with a clock of 2^64 - 1" 3 "beyond any real clock" \
	existing "" -1 $NODE 1 1 0 0 "$NOW_NS" "$NOW_NS"

# A dry run refuses what the real run refuses (it used to count them as
# ignored and exit 0).
stream dry-exp 2 0 bad:exp v $((NOW_MS << 16)) $NODE 1 0 0 -5 "$NOW_NS" "$NOW_NS"
check_eq "a dry run of expiration -5: exit 3" "$(feed dry-exp)" 3
check_err "and says the record is invalid" "invalid record"
stream dry-ahead 2 0 bad:ahead v $(((NOW_MS + 2 * DAY_MS) << 16)) $NODE 1 0 0 0 "$NOW_NS" "$NOW_NS"
check_eq "a dry run of a clock two days ahead: exit 4" "$(feed dry-ahead)" 4

# The smaller bound wins: the server's own when the client asks more...
stream ahead-30s 0 60000 bad:30s v $(((NOW_MS + 30000) << 16)) $NODE 1 0 0 0 "$NOW_NS" "$NOW_NS"
snapshot "$STORE" "$WORK/before"
check_eq "--server --max-skew 1000 refuses a record 30 s ahead the client allows: exit 4" \
	"$(feed ahead-30s --max-skew 1000)" 4
snapshot "$STORE" "$WORK/after"
check "and the store is unchanged" cmp -s "$WORK/before" "$WORK/after"

# ... and only the server's operator can lift it.  A store of its own: the
# clock two days ahead is accepted there and moves its clock.
TARGET=$WORK/lifted
kvctl "$TARGET" put x y 2>/dev/null
check_eq "--server --max-skew 0 (the operator lifts the bound) accepts two days ahead" \
	"$(feed two-days --max-skew 0)" 0
check_eq "and stores the record" "$(kvctl "$TARGET" get bad:ahead)" v
check_eq "but still refuses a clock of 2^64 - 1: exit 3" "$(feed max-hlc --max-skew 0)" 3
check_eq "and a ttl with mtime INT64_MAX: exit 3" "$(feed max-mtime --max-skew 0)" 3
check "and its kvctl check is clean" kvctl "$TARGET" check
unset TARGET

# The daemon: the same refusal over TCP, whatever the client asks.
port=$(free_port)
check "the daemon starts" serve srv "$STORE" --listen "127.0.0.1:$port"
for name in century max-hlc neg-exp; do
	snapshot "$STORE" "$WORK/before"
	(
		exec 3<>"/dev/tcp/127.0.0.1/$port"
		cat "$WORK/$name.bin" >&3
		timeout 5 cat <&3 >"$WORK/$name.reply"
	) 2>/dev/null || true
	snapshot "$STORE" "$WORK/after"
	check "serve: '$name' leaves the store unchanged" cmp -s "$WORK/before" "$WORK/after"
done
check "serve: the daemon says why it refused the clock 100 years ahead" \
	grep -aq "max-skew" "$WORK/century.reply"
check "serve: and why the negative expiration" grep -aq "invalid record" "$WORK/neg-exp.reply"
check "serve: kvctl check is clean" kvctl "$STORE" check

# Still replicable, both ways, with clocks near now.
OTHER=$WORK/other
kvctl "$STORE" put after:attack "written after" 2>/dev/null
check_exit "the store syncs to a new one" 0 kvsync "$STORE" "$OTHER"
check_eq "which gets the key written after the attack" "$(kvctl "$OTHER" get after:attack)" \
	"written after"
check_eq "and the key with a ttl" "$(kvctl "$OTHER" get timed)" "with a ttl"
kvctl "$OTHER" put back "from the other"
check_exit "and syncs back through the daemon" 0 kvsync "$OTHER" "kvsync://127.0.0.1:$port"
check_eq "whose record arrives" "$(kvctl "$STORE" get back)" "from the other"
check_exit "the two are converged" 0 kvsync --check "$STORE" "$OTHER"
check "kvctl check is clean on the store" kvctl "$STORE" check
check "kvctl check is clean on the copy" kvctl "$OTHER" check
finish
